#include "compactor/compaction_floor.hpp"

#include <chrono>
#include <cstring>
#include <functional>
#include <string>

#include "compactor/mapping.hpp"
#include "compactor/page_compaction.hpp"

namespace compactor {

std::vector<FloorMeasurement> measure_compaction_floor(const PlanView& plan, const uint8_t* from_space,
                                                       unsigned repetitions) {
    const uint64_t ps = plan.page_size;
    const uint64_t pages = plan.num_to_pages;
    Mapping target_map(ps);  // one hot target page, as the GC thread's buffer is
    uint8_t* target = target_map.data();
    std::memset(target, 0, ps);
    uint64_t sink = 0;  // keeps every row's result observable
    struct Row {
        const char* name;
        const char* description;
        std::function<uint64_t(uint64_t)> page;
    };
    const Row rows[] = {
        {"page_copy", "memcpy of each to-space page's own from-space page into a hot page (cold source)",
         [&](uint64_t pg) {
             std::memcpy(target, from_space + pg * ps, ps);
             return uint64_t{target[ps - 1]};
         }},
        {"live_stride_copy", "the live strides of each to-space page copied into a hot page, no reference forwarding",
         [&](uint64_t pg) { return copy_live_strides(plan, from_space, target, pg); }},
        {"compact_page", "compact_page: live strides copied and every reference forwarded, into a hot page",
         [&](uint64_t pg) { return compact_page(plan, from_space, target, pg); }},
    };
    std::vector<FloorMeasurement> out;
    for (const Row& r : rows) {
        FloorMeasurement m;
        m.name = r.name;
        m.description = r.description;
        m.pages_per_call = 1;
        out.push_back(m);
    }
    if (pages == 0) return out;
    for (unsigned rep = 0; rep < repetitions; ++rep) {
        for (size_t i = 0; i < out.size(); ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            for (uint64_t pg = pages; pg-- > 0;) sink += rows[i].page(pg);
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            out[i].ns_per_page.push_back(dt * 1e9 / static_cast<double>(pages));
        }
    }
    asm volatile("" : : "r"(sink));
    set_medians(out);
    return out;
}

}  // namespace compactor
