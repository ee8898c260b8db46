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
    // Level by level (breadth first), with a visited bitmap (one bit per object: 3 MiB for 25 M objects, so it
    // stays in the caches). A large level is expanded in ascending object order, sorted through a bitmap, so the
    // reference table (ref_start and refs, 12+ bytes per object, far beyond the caches on large heaps) is read
    // as forward sweeps instead of a random load per object; a small level (a chain, the first levels) is
    // expanded in queue order with its next objects' slots prefetched, so a deep graph costs no bitmap scan per
    // level.
    const uint64_t words = (count + 63) / 64;
    std::vector<uint64_t> visited(words, 0), level_bits(words, 0);
    auto bit = [](uint64_t o) { return 1ull << (o % 64); };
    for (uint64_t o = 0; o < count; ++o)  // objects marked already (a young collection's old generation)
        if (live[o]) visited[o / 64] |= bit(o);
    std::vector<uint32_t> level, next;
    for (uint64_t r = 0; r < num_roots; ++r) {
        const int64_t o = roots[r];
        if (o < -1 || o >= static_cast<int64_t>(count)) bad_target("root", r, o, count);
        if (o < 0 || visited[o / 64] & bit(o)) continue;
        visited[o / 64] |= bit(o);
        level.push_back(static_cast<uint32_t>(o));
    }
    auto expand = [&](uint32_t o) {
        for (uint64_t k = ref_start[o], end = ref_start[o + 1]; k < end; ++k) {
            const int64_t t = refs[k];
            if (t < 0) {
                if (t < -1) bad_target("reference", k, t, count);
                continue;
            }
            if (t >= static_cast<int64_t>(count)) bad_target("reference", k, t, count);
            uint64_t& w = visited[t / 64];
            if (w & bit(t)) continue;
            w |= bit(t);
            next.push_back(static_cast<uint32_t>(t));
        }
    };
    constexpr size_t kAhead = 16;          // a small level: the slots of the object this many places on prefetched
    constexpr uint64_t kWordsPerObject = 8;  // a level of more than words / this objects is sorted by the bitmap
    while (!level.empty()) {
        next.clear();
        if (level.size() * kWordsPerObject > words) {
            for (const uint32_t o : level) level_bits[o / 64] |= bit(o);
            for (uint64_t c = 0; c < words; ++c) {
                uint64_t bits = level_bits[c];
                if (!bits) continue;
                level_bits[c] = 0;
                for (; bits; bits &= bits - 1) expand(static_cast<uint32_t>(c * 64 + static_cast<uint64_t>(__builtin_ctzll(bits))));
            }
        } else {
            for (size_t i = 0; i < level.size(); ++i) {
                if (i + kAhead < level.size()) __builtin_prefetch(refs + ref_start[level[i + kAhead]]);
                expand(level[i]);
            }
        }
        level.swap(next);
    }
    for (uint64_t c = 0; c < words; ++c)
        for (uint64_t bits = visited[c]; bits; bits &= bits - 1) live[c * 64 + static_cast<uint64_t>(__builtin_ctzll(bits))] = 1;
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
