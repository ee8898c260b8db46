#include "compactor/marking.hpp"

#include <string>
#include <vector>

#include "compactor/errors.hpp"

namespace compactor {

namespace {

[[noreturn]] void bad_target(const char* what, uint64_t index, int64_t target, uint64_t count) {
    throw PlanError(std::string(what) + " " + std::to_string(index) + " names object " + std::to_string(target) +
                    " of " + std::to_string(count));
}

}  // namespace

void mark_reachable(uint64_t count, const uint64_t* ref_start, const int32_t* refs, const int32_t* roots,
                    uint64_t num_roots, uint8_t* live) {
    std::vector<uint32_t> queue;
    queue.reserve(1024);
    for (uint64_t r = 0; r < num_roots; ++r) {
        const int64_t o = roots[r];
        if (o < -1 || o >= static_cast<int64_t>(count)) bad_target("root", r, o, count);
        if (o < 0 || live[o]) continue;
        live[o] = 1;
        queue.push_back(static_cast<uint32_t>(o));
    }
    // Breadth first: the queue runs ahead of the object being scanned, so the reference slots of the object
    // kPrefetch places ahead are fetched while this one is scanned (the targets' live bytes are the other miss).
    constexpr size_t kPrefetch = 16;
    for (size_t head = 0; head < queue.size(); ++head) {
        if (head + kPrefetch < queue.size()) __builtin_prefetch(refs + ref_start[queue[head + kPrefetch]]);
        const uint32_t o = queue[head];
        for (uint64_t k = ref_start[o], end = ref_start[o + 1]; k < end; ++k) {
            const int64_t t = refs[k];
            if (t < 0) {
                if (t < -1) bad_target("reference", k, t, count);
                continue;
            }
            if (t >= static_cast<int64_t>(count)) bad_target("reference", k, t, count);
            if (live[t]) continue;
            live[t] = 1;
            queue.push_back(static_cast<uint32_t>(t));
        }
    }
}

void live_words_bitmap(uint64_t count, const uint32_t* offset, const uint32_t* size, const uint8_t* live,
                       uint64_t* words) {
    for (uint64_t i = 0; i < count; ++i) {
        if (!live[i]) continue;
        uint64_t w = offset[i] / 8;
        const uint64_t end = w + size[i] / 8;
        while (w < end) {  // the bits of [w, end) within one bitmap word at a time
            const uint64_t c = w / 64, b = w % 64;
            const uint64_t n = end - w < 64 - b ? end - w : 64 - b;
            words[c] |= (n == 64 ? ~0ull : ((1ull << n) - 1)) << b;
            w += n;
        }
    }
}

}  // namespace compactor
