// Owning containers for an object table and a plan, and the moving space they are materialized into.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compactor/heap_image.hpp"
#include "compactor/mapping.hpp"
#include "compactor/plan.hpp"

namespace compactor {

struct ObjectTable {
    std::vector<uint32_t> offset;
    std::vector<uint32_t> size;
    std::vector<uint16_t> num_refs;
    std::vector<uint64_t> identity;
    std::vector<uint64_t> ref_start;  // count + 1
    std::vector<int32_t> refs;
    ObjectTableView view() const;
};

struct PlanData {
    uint64_t heap_size = 0, page_size = 0;
    std::vector<uint64_t> live_words;
    std::vector<uint32_t> chunk_offset;
    std::vector<ChunkEntry> chunks;  // both of the above interleaved, built by derive_chunks(): what compaction reads
    std::vector<uint32_t> first_obj;
    std::vector<uint64_t> first_obj_header;
    std::vector<uint32_t> pre_compact_offset;
    uint64_t dense_prefix_pages = 0, slide_begin = 0, post_compact_end = 0, live_bytes = 0;
    uint64_t old_gen_end = 0;  // young collections: the old generation's end (plan.hpp)
    PlanView view() const;
    // Builds `chunks` from live_words and chunk_offset (call once both are set, before validation).
    void derive_chunks();
};

// The moving space: one anonymous mapping that holds the heap image, plus the root array outside it.
class HeapSpace {
public:
    explicit HeapSpace(uint64_t heap_size);
    uint8_t* base() const { return space_.data(); }
    uint64_t size() const { return space_.length(); }
    Mapping& mapping() { return space_; }
    std::vector<uint32_t>& roots() { return roots_; }
    // Restores the pristine generated state: materializes the table and resets the roots. With keep_image, the
    // pristine bytes and roots are kept in a second mapping as well (one more heap of memory), for restore().
    void reset(const ObjectTableView& table, const int32_t* root_objects, uint64_t num_roots, bool keep_image = false);
    // The pristine state again from the kept image: the space populated (MADV_POPULATE_WRITE, one call for the
    // pages a collection unmapped), then one memcpy — memory speed instead of object by object.
    void restore();
    bool has_pristine_image() const { return pristine_.valid(); }
    void drop_pristine_image() { pristine_.unmap(); }

private:
    Mapping space_;
    std::vector<uint32_t> roots_;
    Mapping pristine_;  // the pristine bytes, when kept
    std::vector<uint32_t> pristine_roots_;
};

}  // namespace compactor
