// Marking, the planner's side: the objects reachable from the roots, and ART's live-words bitmap. The verifier
// (verify.hpp) traverses the heap's own bytes independently of this; this reads only the object table.
#pragma once

#include <cstdint>

namespace compactor {

// Marks live[i] = 1 for every object reachable from `roots` (object indices, -1 = null) over the reference graph
// refs[ref_start[i] .. ref_start[i+1]) (object indices, -1 = null); live[] (count entries) must be zeroed except
// for objects taken as marked already, which are never entered. One pass over the reachable objects, breadth
// first, level by level, with a visited bit per object; a large level is expanded in ascending object order (the
// reference table read in forward sweeps), a small one in queue order with prefetching. Throws PlanError naming
// a root or reference outside [-1, count).
void mark_reachable(uint64_t count, const uint64_t* ref_start, const int32_t* refs, const int32_t* roots,
                    uint64_t num_roots, uint8_t* live);

// Sets bit b of words[c] for every live 8-byte word 64*c + b (objects [offset, offset + size), 8-byte aligned,
// sorted, non-overlapping, within the heap: the validated object table); words[] (heap_size / 512 entries) must
// be zeroed.
void live_words_bitmap(uint64_t count, const uint32_t* offset, const uint32_t* size, const uint8_t* live,
                       uint64_t* words);

}  // namespace compactor
