#include "compactor/plan.hpp"

#include <string>

#include "compactor/errors.hpp"
#include "compactor/object_layout.hpp"

namespace compactor {

using namespace layout;

void validate_plan(const PlanView& p) {
    auto fail = [](const std::string& what) { throw PlanError("plan: " + what); };
    auto s = [](uint64_t v) { return std::to_string(v); };
    const uint64_t ps = p.page_size;
    if (ps < 4096 || (ps & (ps - 1)) != 0 || ps > (1u << 20)) fail("page_size " + s(ps) + " is not a power of two in [4096, 1 MiB]");
    if (p.heap_size == 0 || p.heap_size % ps != 0) fail("heap_size " + s(p.heap_size) + " is not a positive multiple of the page size");
    if (p.heap_size > kMaxHeapSize) fail("heap_size exceeds the 32-bit offset limit (4 GiB - 8)");
    if (p.num_chunks != p.heap_size / kChunkSize) fail("num_chunks " + s(p.num_chunks) + " != heap_size / 512");
    if (!p.chunks) fail("missing live-words bitmap and chunk offsets");
    if (p.post_compact_end > p.heap_size || p.post_compact_end % 8) fail("post_compact_end " + s(p.post_compact_end) + " out of range");
    if (p.num_to_pages != (p.post_compact_end + ps - 1) / ps) fail("num_to_pages disagrees with post_compact_end");
    if (p.num_to_pages && (!p.first_obj || !p.first_obj_header || !p.pre_compact_offset)) fail("missing per-page arrays");
    if (p.dense_prefix_pages > p.num_to_pages) fail("dense prefix longer than the compacted heap");
    if (p.old_gen_end % 8 || p.old_gen_end > p.dense_prefix_pages * ps)
        fail("old_gen_end " + s(p.old_gen_end) + " does not lie inside the dense prefix (8-aligned)");
    if (p.slide_begin < p.dense_prefix_pages * ps || p.slide_begin > p.post_compact_end || p.slide_begin % 8)
        fail("slide_begin " + s(p.slide_begin) + " out of range");
    if (p.live_bytes > p.heap_size) fail("live_bytes exceeds the heap");
    const uint64_t first_sliding_chunk = p.slide_begin / kChunkSize;
    for (uint64_t c = first_sliding_chunk; c < p.num_chunks; ++c) {
        const uint64_t off = p.chunks[c].offset;
        const uint64_t bytes = 8ull * static_cast<uint64_t>(__builtin_popcountll(p.chunks[c].live_words));
        if (off % 8 || (bytes && off + bytes > p.post_compact_end))
            fail("chunk_offset[" + s(c) + "] = " + s(off) + " places live data beyond post_compact_end");
    }
    for (uint64_t pg = 0; pg < p.num_to_pages; ++pg) {
        if (p.first_obj[pg] >= p.heap_size || p.first_obj[pg] % 8) fail("first_obj[" + s(pg) + "] out of range");
        if (p.pre_compact_offset[pg] >= p.heap_size || p.pre_compact_offset[pg] % 8)
            fail("pre_compact_offset[" + s(pg) + "] out of range");
        const ObjectHeader h = unpack_header(p.first_obj_header[pg]);
        if (h.size < kMinFillerSize || h.size % 8 || (h.klass != kClassObject && h.klass != kClassFiller))
            fail("first_obj_header[" + s(pg) + "] is not a valid object header");
    }
}

}  // namespace compactor
