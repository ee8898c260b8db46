// The compaction plan as the native core executes it (the Python planner computes it; the runner loads it
// from a plan file). Non-owning view over the plan arrays. The core never re-plans: it evaluates ART's
// post-compact address formula over these arrays and walks the live-words bitmap.
#pragma once

#include <cstdint>

namespace compactor {

// The forwarding table, one entry per 512-byte chunk: the chunk's live-words bitmap word beside the post-compact
// offset of its first live word. Derived from the plan's two arrays when a plan is loaded, so that forwarding a
// reference reads one cache line instead of two.
struct alignas(16) ChunkEntry {
    uint64_t live_words;
    uint32_t offset;
    uint32_t reserved;
};
static_assert(sizeof(ChunkEntry) == 16, "four chunk entries per cache line");

struct PlanView {
    uint64_t heap_size = 0;          // bytes in the moving space (multiple of page_size)
    uint64_t page_size = 0;          // the page size the plan was made for
    uint64_t num_chunks = 0;         // heap_size / 512
    // Per chunk c: the live-words bitmap word (bit b = 8-byte word 64*c + b is live) and the post-compact offset
    // of the chunk's first live word (chunks >= slide_begin).
    const ChunkEntry* chunks = nullptr;
    uint64_t num_to_pages = 0;       // to-space pages holding data: ceil(post_compact_end / page_size)
    const uint32_t* first_obj = nullptr;         // per to-space page: pre-compact offset of the object covering its start
    const uint64_t* first_obj_header = nullptr;  // per to-space page: that object's header word
    const uint32_t* pre_compact_offset = nullptr;// per to-space page: pre-compact offset of the byte landing at its start
    uint64_t dense_prefix_pages = 0; // leading pages updated in place, not slid
    // A young collection (generational CMC): [0, old_gen_end) is the old generation (an object boundary), the start
    // of the dense prefix, which ends on the page it ends on.
    // It was not traced: its live-words bits mark the objects on dirty cards, the only ones whose references are
    // updated; the others are left as they are (never turned into fillers), and a page without such an object is
    // mapped back untouched. 0 for a full collection.
    uint64_t old_gen_end = 0;
    uint64_t slide_begin = 0;        // first pre-compact offset that slides (>= dense_prefix_pages * page_size)
    uint64_t post_compact_end = 0;   // end of the compacted heap
    uint64_t live_bytes = 0;
};

// Bounds and consistency checks that make every core routine memory-safe on this plan; throws PlanError naming
// the field. A plan that passes but is semantically wrong yields a heap that fails verification, never an
// out-of-bounds access.
void validate_plan(const PlanView& p);

inline bool word_is_live(const PlanView& p, uint64_t offset) {
    const uint64_t w = offset / 8;
    return (p.chunks[w / 64].live_words >> (w % 64)) & 1u;
}

// ART's formula: post-compact offset of a live object starting at `offset`.
inline uint64_t post_compact_offset(const PlanView& p, uint64_t offset) {
    if (offset < p.slide_begin) return offset;
    const uint64_t w = offset / 8;
    const uint64_t c = w / 64;
    const ChunkEntry& e = p.chunks[c];
    return e.offset + 8ull * static_cast<uint64_t>(__builtin_popcountll(e.live_words & ((1ull << (w % 64)) - 1)));
}

}  // namespace compactor
