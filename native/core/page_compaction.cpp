// Page compaction: the copying half (live strides of from-space to their post-compact place) and the forwarding
// half (each reference slot to its referent's post-compact offset), shared by the stop-the-world collector, the GC
// thread, the SIGBUS handlers and the fault thread, so async-signal-safe (no allocation, a bounded stack).
// The live-words bitmap and the chunk offsets are one interleaved table (PlanView::chunks); references are
// forwarded in groups, their chunk entries prefetched first. Why each choice, and what was tried and dropped:
// docs/compaction-speed.md.
#include "compactor/page_compaction.hpp"

#include <cstring>

#include "compactor/object_layout.hpp"

namespace compactor {

using namespace layout;

namespace {

inline uint64_t live_word(const PlanView& p, uint64_t c) { return p.chunks[c].live_words; }

// First live word at or after `offset`, or heap_size when none.
inline uint64_t next_live(const PlanView& p, uint64_t offset) {
    uint64_t w = offset / 8;
    const uint64_t nwords = p.heap_size / 8;
    while (w < nwords) {
        const uint64_t c = w / kWordsPerChunk;
        const uint64_t bits = live_word(p, c) >> (w % kWordsPerChunk);
        if (bits) return (w + static_cast<uint64_t>(__builtin_ctzll(bits))) * 8;
        w = (c + 1) * kWordsPerChunk;
    }
    return p.heap_size;
}

// First dead word at or after `offset` (offset is live), capped at `limit`.
inline uint64_t end_of_live_run(const PlanView& p, uint64_t offset, uint64_t limit) {
    uint64_t w = offset / 8;
    const uint64_t wlimit = limit / 8;
    while (w < wlimit) {
        const uint64_t c = w / kWordsPerChunk;
        const uint64_t dead = ~live_word(p, c) >> (w % kWordsPerChunk);
        if (dead) {
            const uint64_t e = w + static_cast<uint64_t>(__builtin_ctzll(dead));
            return (e < wlimit ? e : wlimit) * 8;
        }
        w = (c + 1) * kWordsPerChunk;
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

// A reference's post-compact offset. Values that are no reference into the sliding part are left as they are:
// null, the dense prefix, and corrupt values (verification reports those).
inline uint32_t forward_ref(const PlanView& p, uint32_t ref) {
    if (ref == kNullRef || ref >= p.heap_size || (ref % 8) != 0 || ref < p.slide_begin) return ref;
    return static_cast<uint32_t>(post_compact_offset(p, ref));
}

// Forwards the reference slots of one target page in groups: slot() records a slot and prefetches its referent's
// chunk entry; every kGroup slots (and at the end) flush() forwards the group, whose misses have overlapped.
// 64 measured faster than 16 and 32, and as fast as 128; the group lives on the (possibly signal) stack.
class Forwarder {
public:
    Forwarder(const PlanView& p, uint8_t* target) : p_(p), target_(target) {}
    ~Forwarder() { flush(); }
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    void slot(uint64_t offset_in_page) {
        const uint32_t ref = load_u32(target_ + offset_in_page);
        __builtin_prefetch(&p_.chunks[(ref < p_.heap_size ? ref : 0u) / kChunkSize]);
        at_[n_++] = static_cast<uint32_t>(offset_in_page);
        if (n_ == kGroup) flush();
    }
    void flush() {
        for (unsigned i = 0; i < n_; ++i) {
            uint8_t* a = target_ + at_[i];
            store_u32(a, forward_ref(p_, load_u32(a)));
        }
        n_ = 0;
    }

private:
    static constexpr unsigned kGroup = 64;
    const PlanView& p_;
    uint8_t* target_;
    uint32_t at_[kGroup];
    unsigned n_ = 0;
};

// Hands the reference slots of object `obj` (to-space offset, header `h`) lying inside [page, end) to `f`.
inline void object_refs(Forwarder& f, uint64_t page, uint64_t end, uint64_t obj, const ObjectHeader& h) {
    if (h.klass != kClassObject) return;
    // obj and page are 8-aligned, so max(first slot, page) is a slot boundary.
    uint64_t slot = obj + kRefsOffset > page ? obj + kRefsOffset : page;
    const uint64_t slots_end = obj + kRefsOffset + 4ull * h.num_refs;
    for (; slot < slots_end && slot + 4 <= end; slot += 4) f.slot(slot - page);
}

// Whether any live-words bit is set in [begin, end) (chunk-aligned bounds).
inline bool any_live(const PlanView& p, uint64_t begin, uint64_t end) {
    for (uint64_t c = begin / kChunkSize; c < end / kChunkSize; ++c)
        if (p.chunks[c].live_words) return true;
    return false;
}

uint64_t compact_dense_page(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page) {
    const uint64_t ps = p.page_size;
    const uint64_t page = to_page * ps;
    const uint64_t end = page + ps;
    const uint64_t dense_end = p.dense_prefix_pages * ps;
    if (target != from_space + page) std::memcpy(target, from_space + page, ps);
    // An old-generation page (young collection) is updated only where an object starts on a dirty card (its
    // live-words bit); one holding no such object, or the tail of one that starts on an earlier page, is mapped
    // back as it is. (An object's slots on this page belong to it even if it starts before: walk from first_obj.)
    const bool old = end <= p.old_gen_end;
    // (Of the objects starting before the page only first_obj reaches into it: its bit, then the page's chunks.)
    if (old && !word_is_live(p, p.first_obj[to_page]) && !any_live(p, page, end)) return 0;
    uint64_t cur = p.first_obj[to_page];
    ObjectHeader h = unpack_header(p.first_obj_header[to_page]);
    uint64_t live = 0;
    Forwarder f(p, target);
    while (cur < end) {
        if (cur >= page) h = unpack_header(load_u64(target + (cur - page)));
        if (h.size < kMinFillerSize || (h.size % 8) != 0) break;  // corrupt: verification reports it
        if (word_is_live(p, cur)) {
            object_refs(f, page, end, cur, h);
            live += h.size;
            cur += h.size;
        } else if (cur < p.old_gen_end) {  // old generation: never a filler; not on a dirty card, left as it is
            cur += h.size;
        } else if (cur >= page && (cur == 0 || cur == p.old_gen_end || word_is_live(p, cur - 8))) {
            // Start of a dead run in this page: one filler covers it up to the next live word. (A filler header
            // is never a reference slot, so writing it before the group's flush is safe.) A run can also start at
            // the old generation's end, whose last object's bit says only whether it is on a dirty card.
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

// The copying half of a sliding page: the live strides landing in [page, end) copied in order, the rest of the
// page zeroed. Strides are found kRuns at a time and every source line of the group is prefetched before the
// group is copied (the hardware prefetcher stops at each 4 KiB boundary of the gappy from-space).
uint64_t copy_sliding_strides(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page) {
    constexpr unsigned kRuns = 16;
    const uint64_t ps = p.page_size;
    const uint64_t page = to_page * ps;
    const uint64_t end = page + ps < p.post_compact_end ? page + ps : p.post_compact_end;
    uint64_t pos = page;
    uint64_t x = p.pre_compact_offset[to_page];
    uint64_t run_at[kRuns], run_len[kRuns];
    while (pos < end) {
        unsigned k = 0;
        for (uint64_t q = pos; k < kRuns && q < end; ++k) {
            x = next_live(p, x);
            if (x >= p.heap_size) break;
            const uint64_t y = end_of_live_run(p, x, x + (end - q) < p.heap_size ? x + (end - q) : p.heap_size);
            for (uint64_t line = x & ~uint64_t{63}; line < y; line += 64) __builtin_prefetch(from_space + line);
            run_at[k] = x;
            run_len[k] = y - x;
            q += y - x;
            x = y;
        }
        if (k == 0) break;
        for (unsigned i = 0; i < k; ++i) {
            std::memcpy(target + (pos - page), from_space + run_at[i], run_len[i]);
            pos += run_len[i];
        }
    }
    if (pos < page + ps) std::memset(target + (pos - page), 0, page + ps - pos);
    return pos - page;
}

uint64_t compact_sliding_page(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page) {
    const uint64_t ps = p.page_size;
    const uint64_t page = to_page * ps;
    const uint64_t end = page + ps < p.post_compact_end ? page + ps : p.post_compact_end;
    const uint64_t placed = copy_sliding_strides(p, from_space, target, to_page);
    // Reference update over the objects covering [page, end), walked in to-space order.
    uint64_t cur = forward_ref(p, p.first_obj[to_page]);
    ObjectHeader h = unpack_header(p.first_obj_header[to_page]);
    Forwarder f(p, target);
    while (cur < end) {
        if (cur >= page) h = unpack_header(load_u64(target + (cur - page)));
        if (h.size < kMinFillerSize || (h.size % 8) != 0) break;
        object_refs(f, page, end, cur, h);
        cur += h.size;
    }
    return placed;
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

uint64_t copy_live_strides(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page) {
    const uint64_t ps = p.page_size;
    switch (page_kind(p, to_page)) {
        case PageKind::Dense:
            if (target != from_space + to_page * ps) std::memcpy(target, from_space + to_page * ps, ps);
            return ps;
        case PageKind::Sliding: return copy_sliding_strides(p, from_space, target, to_page);
        case PageKind::Empty: break;
    }
    std::memset(target, 0, ps);
    return 0;
}

void update_roots(const PlanView& p, uint32_t* roots, uint64_t num_roots) {
    for (uint64_t i = 0; i < num_roots; ++i) roots[i] = forward_ref(p, roots[i]);
}

}  // namespace compactor
