// The object table (what the generator produces and the plan file carries) and the heap image built from it.
#pragma once

#include <cstdint>
#include <vector>

namespace compactor {

// Non-owning view of an object table. Objects are sorted by offset and do not overlap.
struct ObjectTableView {
    uint64_t count = 0;
    const uint32_t* offset = nullptr;    // pre-compact heap offset
    const uint32_t* size = nullptr;      // bytes
    const uint16_t* num_refs = nullptr;
    const uint64_t* identity = nullptr;
    const uint64_t* ref_start = nullptr; // count + 1 entries: refs of object i are refs[ref_start[i] .. ref_start[i+1])
    const int32_t* refs = nullptr;       // target object index, or -1 for null
    uint64_t num_refs_total = 0;
};

// Checks the table is self-consistent and fits a heap of heap_size bytes; throws PlanError naming the field.
void validate_object_table(const ObjectTableView& t, uint64_t heap_size);

// Writes every object (header, identity, references as heap offsets, initial payload) into heap[0, heap_size)
// and zeroes the bytes no object covers. Single pass, sequential writes.
void materialize_heap(const ObjectTableView& t, uint8_t* heap, uint64_t heap_size);

// Root references (heap offsets) for a table's root object indices.
std::vector<uint32_t> root_offsets(const ObjectTableView& t, const int32_t* root_objects, uint64_t num_roots);

}  // namespace compactor
