// One JSON rendering of a collection's result, shared by the Python binding and the device runner so that host
// and device results have exactly the same fields.
#pragma once

#include <string>

#include "compactor/collector.hpp"
#include "compactor/install_floor.hpp"

namespace compactor {

// {"strategy", "faults", "requested_strategy", "fallback", "mutators", "pause_s", "gc_thread_s", ..., "pages": {...},
//  "counters": {...}, "gc_time_ns": {...}, "fault_latency_us": {"p50", "p90", "p99", "p99.9", "max", "samples"},
//  "latency_histogram_log2_ns": [...], "verified", "digest", "reachable_objects", "reachable_bytes",
//  "trace" (only when trace_events > 0 and `with_trace`): trace_json()}
std::string collection_json(const CollectionOutcome& outcome, bool with_trace = true);

// The names of the trace's columns, kinds, phases and methods (trace_events.hpp), and the clock:
// {"clock", "columns", "kinds", "phases", "methods"}.
std::string trace_tables_json();

// trace_tables_json() plus "threads": [{"name", "dropped", "events": [[ts_ns, kind, phase, arg0, arg1, method,
// errno], ...]}, ...] (kind, phase, method: indexes into the tables).
std::string trace_json(const CollectionStats& stats);

std::string floor_json(const std::vector<FloorMeasurement>& floor);

std::string json_escape(const std::string& s);

}  // namespace compactor
