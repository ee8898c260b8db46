#include "compactor/heap_space.hpp"

#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

#include "compactor/errors.hpp"
#include "parallel.hpp"

namespace compactor {

namespace {

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// Copies `len` bytes in page-aligned slices, one thread per CPU (up to 4) from 64 MiB on, each slice's
// destination populated first in one MADV_POPULATE_WRITE (a kernel without it faults page by page): the kernel's
// zeroing and the copy are bandwidth-bound, and one thread does not reach the machine's bandwidth.
void copy_in_slices(uint8_t* dst, const uint8_t* src, uint64_t len) {
    const uint64_t ps = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const unsigned parts = parallel::parts_for(len, 64u << 20);
    parallel::run_parts(parts, [&](unsigned t) {
        const uint64_t lo = len / ps * t / parts * ps, hi = t + 1 == parts ? len : len / ps * (t + 1) / parts * ps;
        ::madvise(dst + lo, hi - lo, MADV_POPULATE_WRITE);
        std::memcpy(dst + lo, src + lo, hi - lo);
    });
}

}  // namespace

ObjectTableView ObjectTable::view() const {
    ObjectTableView v;
    v.count = offset.size();
    v.offset = offset.data();
    v.size = size.data();
    v.num_refs = num_refs.data();
    v.identity = identity.data();
    v.ref_start = ref_start.data();
    v.refs = refs.data();
    v.num_refs_total = refs.size();
    return v;
}

PlanView PlanData::view() const {
    PlanView v;
    v.heap_size = heap_size;
    v.page_size = page_size;
    v.num_chunks = chunks.size();
    v.chunks = chunks.empty() ? nullptr : chunks.data();
    v.num_to_pages = first_obj.size();
    v.first_obj = first_obj.data();
    v.first_obj_header = first_obj_header.data();
    v.pre_compact_offset = pre_compact_offset.data();
    v.dense_prefix_pages = dense_prefix_pages;
    v.old_gen_end = old_gen_end;
    v.slide_begin = slide_begin;
    v.post_compact_end = post_compact_end;
    v.live_bytes = live_bytes;
    return v;
}

void PlanData::derive_chunks() {
    const size_t n = live_words.size() < chunk_offset.size() ? live_words.size() : chunk_offset.size();
    chunks.resize(n);
    for (size_t c = 0; c < n; ++c) chunks[c] = ChunkEntry{live_words[c], chunk_offset[c], 0};
}

HeapSpace::HeapSpace(uint64_t heap_size) : space_(heap_size) {
    if (heap_size % page_size() != 0)
        throw SysError(EINVAL, "heap size " + std::to_string(heap_size) + " is not a multiple of the page size " +
                                   std::to_string(page_size()));
}

void HeapSpace::reset(const ObjectTableView& table, const int32_t* root_objects, uint64_t num_roots, bool keep_image) {
    materialize_heap(table, space_.data(), space_.length());
    roots_ = root_offsets(table, root_objects, num_roots);
    pristine_.unmap();
    if (!keep_image) return;
    Mapping image(space_.length());
    copy_in_slices(image.data(), space_.data(), space_.length());
    pristine_ = std::move(image);
    pristine_roots_ = roots_;
}

void HeapSpace::restore() {
    if (!pristine_.valid()) throw SysError(EINVAL, "this heap space keeps no pristine image: reset it from its table");
    copy_in_slices(space_.data(), pristine_.data(), space_.length());
    roots_ = pristine_roots_;
}

}  // namespace compactor
