// Work of the core split over the machine's CPUs: the verifier's passes, heap materialization and reset. All of
// it runs outside the concurrent phase (never on the fault path or the per-page path).
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace compactor::parallel {

constexpr unsigned kMaxParts = 4;

// One part per CPU (up to kMaxParts) when `work` reaches `threshold` (below it a second thread does not pay).
inline unsigned parts_for(uint64_t work, uint64_t threshold) {
    if (work < threshold) return 1;
    return std::max(1u, std::min(kMaxParts, std::thread::hardware_concurrency()));
}

// Runs part(t) for t in [0, parts): the last on the calling thread, the others on their own, all joined.
template <typename Part>
void run_parts(unsigned parts, const Part& part) {
    std::vector<std::thread> threads;
    for (unsigned t = 0; t + 1 < parts; ++t) threads.emplace_back([&part, t] { part(t); });
    part(parts - 1);
    for (std::thread& th : threads) th.join();
}

}  // namespace compactor::parallel
