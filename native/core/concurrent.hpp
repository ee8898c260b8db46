// Internal entry point of the concurrent compaction (concurrent.cpp), called by collector.cpp.
#pragma once

#include "compactor/collector.hpp"

namespace compactor::detail {

CollectionStats run_concurrent(HeapSpace& space, const PlanView& plan, const CollectorConfig& cfg, Strategy strategy,
                               FaultMode mode);

}  // namespace compactor::detail
