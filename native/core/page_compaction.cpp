#include "compactor/page_compaction.hpp"

#include <cstring>

#include "compactor/object_layout.hpp"

namespace compactor {

using namespace layout;

namespace {

// First live word at or after `offset`, or heap_size when none.
inline uint64_t next_live(const PlanView& p, uint64_t offset) {
    uint64_t w = offset / 8;
    const uint64_t nwords = p.heap_size / 8;
    while (w < nwords) {
        const uint64_t c = w / 64;
        const uint64_t bits = p.live_words[c] >> (w % 64);
        if (bits) return (w + static_cast<uint64_t>(__builtin_ctzll(bits))) * 8;
        w = (c + 1) * 64;
    }
    return p.heap_size;
}

// First dead word at or after `offset` (offset is live), capped at `limit`.
inline uint64_t end_of_live_run(const PlanView& p, uint64_t offset, uint64_t limit) {
    uint64_t w = offset / 8;
    const uint64_t wlimit = limit / 8;
    while (w < wlimit) {
        const uint64_t c = w / 64;
        const uint64_t dead = ~p.live_words[c] >> (w % 64);
        if (dead) {
            const uint64_t e = w + static_cast<uint64_t>(__builtin_ctzll(dead));
            return (e < wlimit ? e : wlimit) * 8;
        }
        w = (c + 1) * 64;
    }
    return wlimit * 8;
}

inline uint32_t load_u32(const uint8_t* at) {
    uint32_t v;
    std::memcpy(&v, at, 4);
    return v;
}
inline void store_u32(uint8_t* at, uint32_t v) { std::memcpy(at, &v, 4); }
inline uint64_t load_u64(const uint8_t* at) {
    uint64_t v;
    std::memcpy(&v, at, 8);
    return v;
}

inline uint32_t forward_ref(const PlanView& p, uint32_t ref) {
    if (ref == kNullRef || ref >= p.heap_size || (ref % 8) != 0) return ref;  // corrupt values are left for verification
    return static_cast<uint32_t>(post_compact_offset(p, ref));
}

// Updates the reference slots of object at to-space offset `obj` (header `h`) that lie inside [page, end).
inline void update_object_refs(const PlanView& p, uint8_t* target, uint64_t page, uint64_t end, uint64_t obj,
                               const ObjectHeader& h) {
    if (h.klass != kClassObject) return;
    // obj and page are 8-aligned, so max(first slot, page) is a slot boundary.
    uint64_t slot = obj + kRefsOffset > page ? obj + kRefsOffset : page;
    const uint64_t slots_end = obj + kRefsOffset + 4ull * h.num_refs;
    for (; slot < slots_end && slot + 4 <= end; slot += 4) {
        uint8_t* at = target + (slot - page);
        store_u32(at, forward_ref(p, load_u32(at)));
    }
}

uint64_t compact_dense_page(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page) {
    const uint64_t ps = p.page_size;
    const uint64_t page = to_page * ps;
    const uint64_t end = page + ps;
    const uint64_t dense_end = p.dense_prefix_pages * ps;
    if (target != from_space + page) std::memcpy(target, from_space + page, ps);
    uint64_t cur = p.first_obj[to_page];
    ObjectHeader h = unpack_header(p.first_obj_header[to_page]);
    uint64_t live = 0;
    while (cur < end) {
        if (cur >= page) h = unpack_header(load_u64(target + (cur - page)));
        if (h.size < kMinFillerSize || (h.size % 8) != 0) break;  // corrupt: verification reports it
        if (word_is_live(p, cur)) {
            update_object_refs(p, target, page, end, cur, h);
            live += h.size;
            cur += h.size;
        } else if (cur >= page && (cur == 0 || word_is_live(p, cur - 8))) {
            // Start of a dead run in this page: one filler covers it up to the next live word.
            uint64_t run_end = next_live(p, cur);
            if (run_end > dense_end) run_end = dense_end;
            const uint64_t filler = pack_header(static_cast<uint32_t>(run_end - cur), 0, kClassFiller);
            std::memcpy(target + (cur - page), &filler, 8);
            cur = run_end;
        } else {
            cur += h.size;  // inside a dead run that a filler written elsewhere covers
        }
    }
    return live;
}

uint64_t compact_sliding_page(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page) {
    const uint64_t ps = p.page_size;
    const uint64_t page = to_page * ps;
    const uint64_t end = page + ps < p.post_compact_end ? page + ps : p.post_compact_end;
    uint64_t pos = page;
    uint64_t x = p.pre_compact_offset[to_page];
    while (pos < end) {
        x = next_live(p, x);
        if (x >= p.heap_size) break;
        const uint64_t y = end_of_live_run(p, x, x + (end - pos) < p.heap_size ? x + (end - pos) : p.heap_size);
        std::memcpy(target + (pos - page), from_space + x, y - x);
        pos += y - x;
        x = y;
    }
    if (pos < page + ps) std::memset(target + (pos - page), 0, page + ps - pos);
    // Reference update over the objects covering [page, end), walked in to-space order.
    uint64_t cur = post_compact_offset(p, p.first_obj[to_page]);
    ObjectHeader h = unpack_header(p.first_obj_header[to_page]);
    while (cur < end) {
        if (cur >= page) h = unpack_header(load_u64(target + (cur - page)));
        if (h.size < kMinFillerSize || (h.size % 8) != 0) break;
        update_object_refs(p, target, page, end, cur, h);
        cur += h.size;
    }
    return pos - page;
}

}  // namespace

uint64_t compact_page(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page) {
    switch (page_kind(p, to_page)) {
        case PageKind::Dense: return compact_dense_page(p, from_space, target, to_page);
        case PageKind::Sliding: return compact_sliding_page(p, from_space, target, to_page);
        case PageKind::Empty: break;
    }
    std::memset(target, 0, p.page_size);
    return 0;
}

void update_roots(const PlanView& p, uint32_t* roots, uint64_t num_roots) {
    for (uint64_t i = 0; i < num_roots; ++i) roots[i] = forward_ref(p, roots[i]);
}

}  // namespace compactor
