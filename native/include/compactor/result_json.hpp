// One JSON rendering of a collection's result, shared by the Python binding and the device runner so that host
// and device results have exactly the same fields.
#pragma once

#include <string>

#include "compactor/collector.hpp"
#include "compactor/install_floor.hpp"

namespace compactor {

// {"strategy", "faults", "requested_strategy", "fallback", "mutators", "pause_s", "gc_thread_s", ..., "pages": {...},
//  "counters": {...}, "gc_time_ns": {...}, "fault_latency_us": {"p50", "p90", "p99", "p99.9", "max", "samples"},
//  "latency_histogram_log2_ns": [...], "verified", "digest", "reachable_objects", "reachable_bytes"}
std::string collection_json(const CollectionOutcome& outcome);

std::string floor_json(const std::vector<FloorMeasurement>& floor);

std::string json_escape(const std::string& s);

}  // namespace compactor
