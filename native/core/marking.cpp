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
    // Breadth first: the queue runs ahead of the object being scanned, so its random loads are fetched in three
    // stages before they are needed: the ref_start entry of the object kAhead places ahead, the reference slots
    // of the one 2/3 of that ahead (its ref_start entry is in cache by then), and the targets' live bytes of the
    // one 1/3 ahead (its slots are in cache). Slots are not checked here; the scan below checks them.
    constexpr size_t kAhead = 48;
    auto prefetch_live_bytes = [&](uint32_t o) {
        for (uint64_t k = ref_start[o], end = ref_start[o + 1]; k < end; ++k) {
            const int64_t t = refs[k];
            if (t >= 0 && t < static_cast<int64_t>(count)) __builtin_prefetch(live + t);
        }
    };
    for (size_t head = 0; head < queue.size(); ++head) {
        const size_t ahead = queue.size() - head - 1;
        if (ahead > kAhead) __builtin_prefetch(ref_start + queue[head + kAhead]);
        if (ahead > kAhead * 2 / 3) __builtin_prefetch(refs + ref_start[queue[head + kAhead * 2 / 3]]);
        if (ahead > kAhead / 3) prefetch_live_bytes(queue[head + kAhead / 3]);
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
