#include "compactor/heap_image.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "compactor/errors.hpp"
#include "compactor/object_layout.hpp"
#include "parallel.hpp"

namespace compactor {

using namespace layout;

void validate_object_table(const ObjectTableView& t, uint64_t heap_size) {
    auto fail = [](const std::string& what) { throw PlanError("object table: " + what); };
    if (heap_size > kMaxHeapSize) fail("heap size exceeds the 32-bit offset limit");
    if (t.count > 0 && (!t.offset || !t.size || !t.num_refs || !t.identity || !t.ref_start)) fail("missing array");
    if (t.count > 0 && t.ref_start[0] != 0) fail("ref_start[0] must be 0");
    uint64_t prev_end = 0;
    for (uint64_t i = 0; i < t.count; ++i) {
        const uint64_t off = t.offset[i], sz = t.size[i];
        if (off % kObjectAlignment || sz % kObjectAlignment)
            fail("object " + std::to_string(i) + " is not 8-byte aligned (offset " + std::to_string(off) + ", size " +
                 std::to_string(sz) + ")");
        if (off < prev_end) fail("object " + std::to_string(i) + " overlaps its predecessor or is out of order");
        if (sz < min_object_size(t.num_refs[i]))
            fail("object " + std::to_string(i) + " of " + std::to_string(sz) + " bytes cannot hold " +
                 std::to_string(t.num_refs[i]) + " references");
        if (off + sz > heap_size) fail("object " + std::to_string(i) + " ends beyond the heap");
        if (t.ref_start[i + 1] != t.ref_start[i] + t.num_refs[i])
            fail("ref_start of object " + std::to_string(i + 1) + " disagrees with num_refs");
        prev_end = off + sz;
    }
    const uint64_t total = t.count ? t.ref_start[t.count] : 0;
    if (total != t.num_refs_total) fail("reference array length disagrees with num_refs");
    for (uint64_t r = 0; r < total; ++r) {
        if (t.refs[r] < -1 || t.refs[r] >= static_cast<int64_t>(t.count))
            fail("reference " + std::to_string(r) + " names object " + std::to_string(t.refs[r]) + " of " +
                 std::to_string(t.count));
    }
}

namespace {

// Objects [first, last) written, with the gaps before each of them zeroed (from the end of object first - 1).
// A reference is written as its target's offset: a random load into the offset table, so the targets of the
// object kAhead places on are prefetched.
void materialize_objects(const ObjectTableView& t, uint8_t* heap, uint64_t first, uint64_t last) {
    constexpr uint64_t kAhead = 8;
    uint64_t cursor = first == 0 ? 0 : t.offset[first - 1] + t.size[first - 1];
    for (uint64_t i = first; i < last; ++i) {
        if (i + kAhead < last)
            for (uint64_t k = t.ref_start[i + kAhead], e = t.ref_start[i + kAhead + 1]; k < e; ++k)
                if (t.refs[k] >= 0) __builtin_prefetch(t.offset + t.refs[k]);
        const uint64_t off = t.offset[i];
        const uint32_t sz = t.size[i];
        const uint16_t nrefs = t.num_refs[i];
        if (off > cursor) std::memset(heap + cursor, 0, off - cursor);
        uint8_t* obj = heap + off;
        const uint64_t hdr = pack_header(sz, nrefs, kClassObject);
        std::memcpy(obj, &hdr, 8);
        std::memcpy(obj + kIdentityOffset, &t.identity[i], 8);
        uint32_t* refs = reinterpret_cast<uint32_t*>(obj + kRefsOffset);
        const int32_t* targets = t.refs + t.ref_start[i];
        for (uint32_t r = 0; r < nrefs; ++r) refs[r] = targets[r] < 0 ? kNullRef : t.offset[targets[r]];
        const uint32_t pay = payload_offset(nrefs);
        if (pay > kRefsOffset + 4u * nrefs) refs[nrefs] = 0;  // padding word half
        uint64_t* words = reinterpret_cast<uint64_t*>(obj + pay);
        const uint64_t nwords = (sz - pay) / 8;
        const uint64_t id = t.identity[i];
        for (uint64_t w = 0; w < nwords; ++w) words[w] = initial_payload_word(id, w);
        cursor = off + sz;
    }
}

}  // namespace

void materialize_heap(const ObjectTableView& t, uint8_t* heap, uint64_t heap_size) {
    // Objects split into one contiguous range per CPU (up to 4) for large tables: each range writes its own
    // bytes of the heap (its objects and the gaps before them).
    const unsigned parts = parallel::parts_for(t.count, 1u << 18);
    parallel::run_parts(parts, [&](unsigned p) {
        materialize_objects(t, heap, t.count * p / parts, t.count * (p + 1) / parts);
    });
    const uint64_t used = t.count ? t.offset[t.count - 1] + t.size[t.count - 1] : 0;
    if (used < heap_size) std::memset(heap + used, 0, heap_size - used);
}

std::vector<uint32_t> root_offsets(const ObjectTableView& t, const int32_t* root_objects, uint64_t num_roots) {
    std::vector<uint32_t> out(num_roots);
    for (uint64_t i = 0; i < num_roots; ++i) {
        const int32_t o = root_objects[i];
        if (o < -1 || o >= static_cast<int64_t>(t.count))
            throw PlanError("root " + std::to_string(i) + " names object " + std::to_string(o) + " of " +
                            std::to_string(t.count));
        out[i] = o < 0 ? kNullRef : t.offset[o];
    }
    return out;
}

}  // namespace compactor
