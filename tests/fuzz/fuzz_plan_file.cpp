// libFuzzer target: the plan-file loader, and (for small heaps) every page-compaction routine and the verifier on
// whatever plan the loader accepts. A malformed or hostile file must give a PlanError, never a crash or an
// out-of-bounds access (built with AddressSanitizer and UBSan).
#include <cstdint>
#include <cstring>
#include <vector>

#include "compactor/errors.hpp"
#include "compactor/heap_image.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/page_compaction.hpp"
#include "compactor/plan_file.hpp"
#include "compactor/verify.hpp"

using namespace compactor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    PlanBundle b;
    try {
        b = parse_plan_file(data, size);
    } catch (const PlanError&) {
        return 0;
    }
    const PlanView p = b.plan.view();
    if (p.heap_size > (1u << 20)) return 0;
    std::vector<uint8_t> heap(p.heap_size), page(p.page_size);
    const ObjectTableView t = b.table.view();
    materialize_heap(t, heap.data(), heap.size());
    std::vector<uint32_t> roots = root_offsets(t, b.root_objects.data(), b.root_objects.size());
    try {
        graph_digest(heap.data(), heap.size(), roots.data(), roots.size());
    } catch (const HeapCorruption&) {
    }
    for (uint64_t pg = 0; pg < p.num_to_pages; ++pg) {
        copy_live_strides(p, heap.data(), page.data(), pg);
        compact_page(p, heap.data(), page.data(), pg);
    }
    for (uint64_t pg = 0; pg < p.dense_prefix_pages; ++pg) compact_page(p, heap.data(), heap.data() + pg * p.page_size, pg);
    update_roots(p, roots.data(), roots.size());
    return 0;
}
