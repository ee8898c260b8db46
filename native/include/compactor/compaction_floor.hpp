// The compaction floor: what producing a plan's to-space pages costs per page in user space, beside what merely
// copying them costs, measured on the same plan and from-space image, inside the core. Rows (per to-space page):
//   page_copy         memcpy of the page's own from-space page into one hot page: streaming cold memory
//   live_stride_copy  the live strides landing in the page copied into one hot page, no reference forwarding
//   compact_page      compact_page itself (live strides copied and every reference forwarded), same target
// The gap between live_stride_copy and compact_page is the cost of reference forwarding and object walking.
#pragma once

#include <cstdint>
#include <vector>

#include "compactor/install_floor.hpp"
#include "compactor/plan.hpp"

namespace compactor {

// Measures the three rows over every to-space page of `plan`, in descending page order as the GC thread
// compacts, `repetitions` times each (interleaved). Reads `from_space` (the pre-compact image, heap_size bytes,
// populated) and never writes it.
std::vector<FloorMeasurement> measure_compaction_floor(const PlanView& plan, const uint8_t* from_space,
                                                       unsigned repetitions);

}  // namespace compactor
