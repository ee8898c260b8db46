#include "compactor/verify.hpp"

#include <algorithm>
#include <atomic>
#include <vector>

#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

#include "compactor/errors.hpp"
#include "compactor/mapping.hpp"
#include "compactor/object_layout.hpp"
#include "parallel.hpp"

namespace compactor {

using namespace layout;

namespace {

inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return z ^ (z >> 33);
}

inline uint64_t ld64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline uint32_t ld32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

// Reads and checks the object at `off`; throws naming `who()` when it is not a valid object. `who` builds its
// text only on failure: the traversal visits every reference.
// A reference may point at `off`: aligned, with room for an object header below `limit`.
inline bool reference_in_bounds(uint64_t off, uint64_t limit) { return off % 8 == 0 && off + kMinObjectSize <= limit; }
// `h`, read at `off`, is the header of an object that ends below `limit` and within the heap.
inline bool object_header_ok(const ObjectHeader& h, uint64_t off, uint64_t heap_size, uint64_t limit) {
    return h.klass == kClassObject && h.size >= min_object_size(h.num_refs) && h.size % 8 == 0 &&
           off + h.size <= limit && off + h.size <= heap_size;
}
// Whether bit `off / 8` is set in a one-bit-per-word bitmap.
inline bool word_bit(const std::vector<uint64_t>& bitmap, uint64_t off) {
    const uint64_t w = off / 8;
    return bitmap[w / 64] >> (w % 64) & 1;
}
// Sets that bit; false when it was set already.
inline bool set_word_bit(std::vector<uint64_t>& bitmap, uint64_t off) {
    const uint64_t w = off / 8;
    uint64_t& bits = bitmap[w / 64];
    const uint64_t m = 1ull << (w % 64);
    if (bits & m) return false;
    bits |= m;
    return true;
}

template <typename Who>
ObjectHeader checked_object(const uint8_t* heap, uint64_t heap_size, uint64_t limit, uint64_t off, const Who& who) {
    if (!reference_in_bounds(off, limit))
        throw HeapCorruption(who() + " points at offset " + hex(off) + ", outside the heap or unaligned");
    const ObjectHeader h = unpack_header(ld64(heap + off));
    if (!object_header_ok(h, off, heap_size, limit))
        throw HeapCorruption(who() + " points at offset " + hex(off) + ", which is not the start of a live object (header " +
                             hex(ld64(heap + off)) + ")");
    return h;
}

}  // namespace

namespace {
inline uint64_t payload_term_inline(uint64_t identity, uint64_t index, uint64_t value) {  // inlined in the traversals
    return mix64(value ^ mix64(identity * 0x9E3779B97F4A7C15ull + index));
}
}  // namespace

uint64_t payload_term(uint64_t identity, uint64_t index, uint64_t value) { return payload_term_inline(identity, index, value); }

namespace {

// The sum of the payload terms of `n` words at `p` of the object with `identity`. The terms are independent, so
// the loop vectorizes; where the CPU has AVX-512 (64-bit lane multiplies: vpmullq) a clone built for it runs,
// chosen once at startup. Both give the same sum: integer arithmetic, in any order.
__attribute__((always_inline)) inline uint64_t payload_sum_loop(const uint8_t* p, uint64_t identity, uint64_t n) {
    uint64_t sum = 0;
    for (uint64_t w = 0; w < n; ++w) sum += payload_term_inline(identity, w, ld64(p + 8 * w));
    return sum;
}
uint64_t payload_sum_portable(const uint8_t* p, uint64_t identity, uint64_t n) { return payload_sum_loop(p, identity, n); }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f,avx512dq,avx512vl"))) uint64_t payload_sum_avx512(const uint8_t* p, uint64_t identity,
                                                                                   uint64_t n) {
    return payload_sum_loop(p, identity, n);  // the same loop, vectorized with 64-bit lane multiplies
}
using PayloadSum = uint64_t (*)(const uint8_t*, uint64_t, uint64_t);
const PayloadSum payload_sum = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") ? &payload_sum_avx512
                                                                                    : &payload_sum_portable;
}();
#else
const auto payload_sum = &payload_sum_portable;
#endif

// Root r's term of the digest.
inline uint64_t root_term(const uint8_t* heap, const uint32_t* roots, uint64_t r) {
    return roots[r] == kNullRef ? mix64(r * 2 + 1) : mix64(r * 2 + 1 + mix64(ld64(heap + roots[r] + kIdentityOffset)));
}

// The digest's term of the (checked) object at `off`: its shape (identity, size, the identities it references, in
// slot order) plus its payload words.
inline uint64_t object_term(const uint8_t* heap, uint64_t off, const ObjectHeader& h) {
    const uint8_t* obj = heap + off;
    const uint64_t id = ld64(obj + kIdentityOffset);
    uint64_t shape = mix64(id ^ (static_cast<uint64_t>(h.size) << 20) ^ h.num_refs);
    for (uint32_t i = 0; i < h.num_refs; ++i) {
        const uint32_t ref = ld32(obj + kRefsOffset + 4 * i);
        shape = mix64(shape + (ref != kNullRef ? ld64(heap + ref + kIdentityOffset) : 0) + i);
    }
    const uint32_t pay = payload_offset(h.num_refs);
    return shape + payload_sum(obj + pay, id, h.size > pay ? (h.size - pay) / 8 : 0);
}

using parallel::run_parts;
constexpr uint64_t kWordsPerThread = 1u << 16;  // bitmap words (32 MiB of heap) before a second thread pays

// Sets bit `off / 8` of a bitmap that other threads set too; true for the one caller that set it. Relaxed: the
// bit only decides who queues the object (the heap is not written while it is verified).
inline bool claim_word_bit(uint64_t* bitmap, uint64_t off) {
    const uint64_t w = off / 8;
    uint64_t* word = bitmap + w / 64;
    const uint64_t m = 1ull << (w % 64);
    if (__atomic_load_n(word, __ATOMIC_RELAXED) & m) return false;
    return !(__atomic_fetch_or(word, m, __ATOMIC_RELAXED) & m);
}

// The sum of object_term over the objects whose bits are set in visited[first_word, last_word), in address order.
// Each referent's identity is a random load: those of the object kRefsAhead objects on are prefetched, so that
// several are in flight while the current object's terms are computed.
GraphDigest sum_object_terms(const uint8_t* heap, const std::vector<uint64_t>& visited, uint64_t first_word,
                             uint64_t last_word) {
    constexpr size_t kRefsAhead = 4;
    GraphDigest g;
    uint64_t ring[kRefsAhead] = {};  // the objects whose referents are being fetched, oldest at `head`
    size_t head = 0, held = 0;
    auto prefetch_referents = [heap](uint64_t off) {
        const ObjectHeader h = unpack_header(ld64(heap + off));
        for (uint32_t i = 0; i < h.num_refs; ++i) {
            const uint32_t ref = ld32(heap + off + kRefsOffset + 4 * i);
            if (ref != kNullRef) __builtin_prefetch(heap + ref + kIdentityOffset);
        }
    };
    auto add_term = [&](uint64_t off) {
        const ObjectHeader h = unpack_header(ld64(heap + off));
        g.digest += object_term(heap, off, h);
        g.objects += 1;
        g.bytes += h.size;
    };
    for (uint64_t c = first_word; c < last_word; ++c) {
        for (uint64_t bits = visited[c]; bits; bits &= bits - 1) {
            const uint64_t off = (c * 64 + static_cast<uint64_t>(__builtin_ctzll(bits))) * 8;
            prefetch_referents(off);
            if (held < kRefsAhead) {
                ring[(head + held++) % kRefsAhead] = off;
                continue;
            }
            add_term(ring[head]);
            ring[head] = off;
            head = (head + 1) % kRefsAhead;
        }
    }
    for (; held > 0; --held, head = (head + 1) % kRefsAhead) add_term(ring[head]);
    return g;
}

}  // namespace

static GraphDigest precise_digest(const uint8_t* heap, uint64_t heap_size, uint64_t limit, const uint32_t* roots,
                               uint64_t num_roots, const std::vector<uint64_t>* starts) {
    GraphDigest g;
    std::vector<uint64_t> visited(heap_size / 8 / 64 + 1, 0);
    std::vector<uint32_t> stack;
    auto visit = [&](uint32_t off, const auto& who) -> bool {
        checked_object(heap, heap_size, limit, off, who);
        if (starts && !word_bit(*starts, off))
            throw HeapCorruption(who() + " points into the middle of an object at offset " + hex(off));
        return set_word_bit(visited, off);
    };
    for (uint64_t r = 0; r < num_roots; ++r) {
        if (roots[r] != kNullRef && visit(roots[r], [r] { return "root " + std::to_string(r); })) stack.push_back(roots[r]);
        g.digest += root_term(heap, roots, r);
    }
    while (!stack.empty()) {
        const uint32_t off = stack.back();
        stack.pop_back();
        const ObjectHeader h = unpack_header(ld64(heap + off));
        const uint64_t id = ld64(heap + off + kIdentityOffset);
        for (uint32_t i = 0; i < h.num_refs; ++i) {  // each referent checked before object_term reads its identity
            const uint32_t ref = ld32(heap + off + kRefsOffset + 4 * i);
            if (ref != kNullRef &&
                visit(ref, [i, id] { return "reference " + std::to_string(i) + " of object identity " + hex(id); }))
                stack.push_back(ref);
        }
        g.digest += object_term(heap, off, h);
        g.objects += 1;
        g.bytes += h.size;
    }
    return g;
}

// The same digest at about memory speed, in two passes, each on one thread per CPU (one for small heaps):
// reachability breadth first, each thread from its share of the roots, claiming objects in a shared visited
// bitmap (whoever sets an object's bit queues it, so each reachable object is expanded once); then the
// reachable objects in address order, the bitmap split into ranges (sequential reads; the referents'
// identities are prefetched). The digest is a sum, so the parts add up to the precise traversal's, term for
// term. False at the first anomaly: the precise traversal then names it.
static bool fast_digest(const uint8_t* heap, uint64_t heap_size, uint64_t limit, const uint32_t* roots,
                        uint64_t num_roots, const std::vector<uint64_t>* starts, GraphDigest& g) {
    std::vector<uint64_t> visited(heap_size / 8 / 64 + 1, 0);
    const uint64_t words = visited.size();
    const unsigned parts = parallel::parts_for(words, kWordsPerThread);
    std::atomic<bool> anomaly{false};
    // A target must lie in bounds (reference_in_bounds); that it is an object start (`starts`, when given) is
    // checked once at the end, as the visited bits being a subset of the start bits: a target inside an object
    // is read as a header and may queue garbage (in bounds, so harmless) before the subset check fails.
    // Two prefetch stages: the header of the object kAhead entries on, and the bitmap words of the referents of
    // the object kAhead / 2 entries on (its header is in cache by then; the words are random loads).
    constexpr size_t kAhead = 32;
    auto prefetch_bitmap_words = [&](uint64_t off) {
        const ObjectHeader h = unpack_header(ld64(heap + off));
        if (!object_header_ok(h, off, heap_size, limit)) return;  // checked, and reported, when it is dequeued
        for (uint32_t i = 0; i < h.num_refs; ++i) {
            const uint64_t w = ld32(heap + off + kRefsOffset + 4 * i) / 8 / 64;
            if (w < words) __builtin_prefetch(&visited[w]);
        }
    };
    auto reach = [&](unsigned t) {
        std::vector<uint32_t> queue;
        queue.reserve(4096);
        for (uint64_t r = t; r < num_roots; r += parts) {
            if (roots[r] == kNullRef) continue;
            if (!reference_in_bounds(roots[r], limit)) return anomaly.store(true, std::memory_order_relaxed);
            if (claim_word_bit(visited.data(), roots[r])) queue.push_back(roots[r]);
        }
        for (size_t head = 0; head < queue.size(); ++head) {
            if (head % 4096 == 0 && anomaly.load(std::memory_order_relaxed)) return;  // another part found one
            if (head + kAhead < queue.size()) __builtin_prefetch(heap + queue[head + kAhead]);
            if (head + kAhead / 2 < queue.size()) prefetch_bitmap_words(queue[head + kAhead / 2]);
            const uint64_t off = queue[head];
            const ObjectHeader h = unpack_header(ld64(heap + off));
            if (!object_header_ok(h, off, heap_size, limit)) return anomaly.store(true, std::memory_order_relaxed);
            for (uint32_t i = 0; i < h.num_refs; ++i) {
                const uint32_t ref = ld32(heap + off + kRefsOffset + 4 * i);
                if (ref == kNullRef) continue;
                if (!reference_in_bounds(ref, limit)) return anomaly.store(true, std::memory_order_relaxed);
                if (claim_word_bit(visited.data(), ref)) queue.push_back(ref);
            }
        }
    };
    run_parts(parts, reach);  // the joins order every claim before the second pass reads the bitmap
    if (anomaly.load(std::memory_order_relaxed)) return false;
    if (starts)
        for (uint64_t w = 0; w < words; ++w)
            if (visited[w] & ~(*starts)[w]) return false;  // a reachable reference points into an object
    for (uint64_t r = 0; r < num_roots; ++r) g.digest += root_term(heap, roots, r);
    std::vector<GraphDigest> sums(parts);
    run_parts(parts, [&](unsigned t) { sums[t] = sum_object_terms(heap, visited, words * t / parts, words * (t + 1) / parts); });
    for (const GraphDigest& s : sums) {
        g.digest += s.digest;
        g.objects += s.objects;
        g.bytes += s.bytes;
    }
    return true;
}

// The fast digest, or (at an anomaly) the precise traversal, which throws naming the reference that is wrong.
static GraphDigest digest_impl(const uint8_t* heap, uint64_t heap_size, uint64_t limit, const uint32_t* roots,
                               uint64_t num_roots, const std::vector<uint64_t>* starts) {
    GraphDigest g;
    if (fast_digest(heap, heap_size, limit, roots, num_roots, starts, g)) return g;
    return precise_digest(heap, heap_size, limit, roots, num_roots, starts);
}

GraphDigest graph_digest(const uint8_t* heap, uint64_t heap_size, const uint32_t* roots, uint64_t num_roots,
                         DigestMethod method) {
    if (method == DigestMethod::Precise) return precise_digest(heap, heap_size, heap_size, roots, num_roots, nullptr);
    if (method == DigestMethod::Auto) return digest_impl(heap, heap_size, heap_size, roots, num_roots, nullptr);
    GraphDigest g;
    if (!fast_digest(heap, heap_size, heap_size, roots, num_roots, nullptr, g))
        throw HeapCorruption("the fast digest found an anomaly (method auto or precise names it)");
    return g;
}

uint64_t digest_after_writes(uint64_t before, const PayloadWrite* writes, uint64_t n) {
    uint64_t d = before;
    for (uint64_t i = 0; i < n; ++i)
        d += payload_term(writes[i].identity, writes[i].index, writes[i].new_value) -
             payload_term(writes[i].identity, writes[i].index, writes[i].old_value);
    return d;
}

namespace {

// Checks every object mutators allocated during the phase against what its identity prescribes
// (object_layout.hpp) and returns their [start, end) extents, sorted.
std::vector<std::pair<uint64_t, uint64_t>> check_new_objects(const uint8_t* heap, uint64_t heap_size, uint64_t end,
                                                             const uint32_t* roots, uint64_t num_roots,
                                                             const NewObjectLogs& logs) {
    std::vector<std::pair<uint64_t, uint64_t>> extents;
    for (size_t m = 0; m < logs.size(); ++m) {
        for (size_t n = 0; n < logs[m].size(); ++n) {
            const uint64_t off = logs[m][n];
            const uint64_t identity = new_object_identity(static_cast<unsigned>(m), n);
            const uint32_t size = new_object_size(identity);
            const uint16_t nrefs = new_object_num_refs(identity);
            const std::string who = "new object " + hex(identity) + " (allocation " + std::to_string(n) +
                                    " of mutator " + std::to_string(m) + ") at offset " + hex(off);
            if (off < end || off % 8 || off + size > heap_size)
                throw HeapCorruption(who + " lies outside the free space above the post-compact end " + hex(end));
            const uint8_t* obj = heap + off;
            if (ld64(obj) != pack_header(size, nrefs, kClassObject) || ld64(obj + kIdentityOffset) != identity)
                throw HeapCorruption(who + ": its header or identity was overwritten (header " + hex(ld64(obj)) + ")");
            for (uint32_t k = 0; k < nrefs; ++k) {
                const uint32_t want = roots[new_object_root(identity, k, num_roots)];
                if (ld32(obj + kRefsOffset + 4 * k) != want)
                    throw HeapCorruption(who + ": reference " + std::to_string(k) + " is " +
                                         hex(ld32(obj + kRefsOffset + 4 * k)) + ", allocated as " + hex(want));
            }
            const uint32_t pay = payload_offset(nrefs);
            for (uint32_t w = 0; w < (size - pay) / 8; ++w)
                if (ld64(obj + pay + 8 * w) != initial_payload_word(identity, w))
                    throw HeapCorruption(who + ": payload word " + std::to_string(w) + " is " +
                                         hex(ld64(obj + pay + 8 * w)) + ", allocated as " +
                                         hex(initial_payload_word(identity, w)));
            extents.emplace_back(off, off + size);
        }
    }
    std::sort(extents.begin(), extents.end());
    for (size_t i = 1; i < extents.size(); ++i)
        if (extents[i].first < extents[i - 1].second)
            throw HeapCorruption("two new objects overlap at offset " + hex(extents[i].first));
    return extents;
}

}  // namespace

VerifyReport verify_compacted(const uint8_t* heap, uint64_t heap_size, uint64_t end, const uint32_t* roots,
                              uint64_t num_roots, uint64_t expected_digest, const NewObjectLogs* new_objects) {
    VerifyReport rep;
    if (end > heap_size) throw HeapCorruption("post-compact end " + hex(end) + " lies beyond the heap");
    // 1. [0, end) parses as objects and fillers.
    std::vector<uint64_t> starts(heap_size / 8 / 64 + 1, 0);
    uint64_t cur = 0;
    while (cur < end) {
        const ObjectHeader h = unpack_header(ld64(heap + cur));
        const bool filler = h.klass == kClassFiller && h.size >= kMinFillerSize && h.num_refs == 0;
        const bool object = h.klass == kClassObject && h.size >= min_object_size(h.num_refs);
        if ((!filler && !object) || h.size % 8 || cur + h.size > end)
            throw HeapCorruption("the compacted heap does not parse at offset " + hex(cur) + " (header " +
                                 hex(ld64(heap + cur)) + "); the post-compact end is " + hex(end));
        if (object) starts[cur / 8 / 64] |= 1ull << (cur / 8 % 64);
        rep.fillers += filler;
        rep.parsed_objects += 1;
        cur += h.size;
    }
    // 2. The objects mutators allocated are what they allocated; everything else above the end is unused: zero
    //    bytes up to the page end, then zero or non-resident pages.
    const auto extents = new_objects ? check_new_objects(heap, heap_size, end, roots, num_roots, *new_objects)
                                     : std::vector<std::pair<uint64_t, uint64_t>>{};
    rep.new_objects = extents.size();
    size_t next_extent = 0;
    auto check_free = [&](uint64_t o) {  // offsets are checked in ascending order
        while (next_extent < extents.size() && extents[next_extent].second <= o) ++next_extent;
        if (next_extent < extents.size() && extents[next_extent].first <= o) return;
        if (ld64(heap + o) != 0)
            throw HeapCorruption("the space above the post-compact end is not free: offset " + hex(o));
    };
    const uint64_t ps = page_size();
    const uint64_t end_page = (end + ps - 1) / ps * ps;
    for (uint64_t o = end; o < end_page && o < heap_size; o += 8) check_free(o);
    if (end_page < heap_size) {
        const uint64_t npages = (heap_size - end_page) / ps;
        std::vector<unsigned char> resident(npages);
        if (::mincore(const_cast<uint8_t*>(heap + end_page), heap_size - end_page, resident.data()) != 0)
            resident.assign(npages, 1);
        for (uint64_t i = 0; i < npages; ++i) {
            if (!(resident[i] & 1)) continue;
            for (uint64_t o = 0; o < ps; o += 8) check_free(end_page + i * ps + o);
        }
    }
    // 3. Every reachable reference is an object start below the end, and the digest matches.
    rep.after = digest_impl(heap, heap_size, end, roots, num_roots, &starts);
    if (rep.after.digest != expected_digest)
        throw HeapCorruption("graph digest " + hex(rep.after.digest) + " differs from the expected " + hex(expected_digest) +
                             " over " + std::to_string(rep.after.objects) + " reachable objects");
    rep.verified = true;
    return rep;
}

std::string first_difference(const uint8_t* eheap, const uint32_t* eroots, const uint8_t* heap, const uint32_t* roots,
                             uint64_t num_roots, uint64_t heap_size) {
    std::vector<uint64_t> visited(heap_size / 8 / 64 + 1, 0);
    std::vector<std::pair<uint32_t, uint32_t>> stack;
    for (uint64_t r = num_roots; r-- > 0;) {
        if ((eroots[r] == kNullRef) != (roots[r] == kNullRef)) return "root " + std::to_string(r) + " differs in nullness";
        if (eroots[r] != kNullRef) stack.emplace_back(eroots[r], roots[r]);
    }
    while (!stack.empty()) {
        auto [eo, o] = stack.back();
        stack.pop_back();
        const uint64_t w = eo / 8;
        if (visited[w / 64] >> (w % 64) & 1) continue;
        visited[w / 64] |= 1ull << (w % 64);
        const uint64_t eid = ld64(eheap + eo + kIdentityOffset);
        if (o % 8 || o + kMinObjectSize > heap_size) return "object identity " + hex(eid) + ": its reference is out of range";
        const ObjectHeader eh = unpack_header(ld64(eheap + eo)), h = unpack_header(ld64(heap + o));
        const uint64_t id = ld64(heap + o + kIdentityOffset);
        const std::string name = "object identity " + hex(eid) + " (expected at pre-compact offset " + hex(eo) +
                                 ", found at " + hex(o) + ")";
        if (id != eid) return name + ": identity is " + hex(id);
        if (h.size != eh.size || h.num_refs != eh.num_refs || h.klass != eh.klass)
            return name + ": header " + hex(ld64(heap + o)) + " instead of " + hex(ld64(eheap + eo));
        if (o + h.size > heap_size) return name + ": extends beyond the heap";
        const uint32_t pay = payload_offset(h.num_refs);
        for (uint64_t b = pay; b < h.size; b += 8)
            if (ld64(heap + o + b) != ld64(eheap + eo + b))
                return name + ": payload word " + std::to_string((b - pay) / 8) + " differs";
        for (uint32_t i = h.num_refs; i-- > 0;) {
            const uint32_t er = ld32(eheap + eo + kRefsOffset + 4 * i), r = ld32(heap + o + kRefsOffset + 4 * i);
            if ((er == kNullRef) != (r == kNullRef)) return name + ": reference " + std::to_string(i) + " differs in nullness";
            if (er == kNullRef) continue;
            if (r % 8 || r + kMinObjectSize > heap_size) return name + ": reference " + std::to_string(i) + " out of range";
            if (ld64(heap + r + kIdentityOffset) != ld64(eheap + er + kIdentityOffset))
                return name + ": reference " + std::to_string(i) + " points at identity " +
                       hex(ld64(heap + r + kIdentityOffset)) + " instead of " + hex(ld64(eheap + er + kIdentityOffset));
            stack.emplace_back(er, r);
        }
    }
    return "";
}

}  // namespace compactor
