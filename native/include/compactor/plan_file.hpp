// Reading and writing plan files: one self-contained file with a heap (object table and roots), its plan and the
// expected digest, so that the runner on a device executes exactly the plan the Python planner made. The format is
// compactor/plan_file_format.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "compactor/heap_image.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/plan.hpp"

namespace compactor {

// Everything a plan file carries: the heap (object table and roots), the plan, and the expected digest.
struct PlanBundle {
    ObjectTable table;
    std::vector<int32_t> root_objects;
    PlanData plan;
    uint64_t expected_digest = 0;  // graph digest of the pristine heap
    uint64_t seed = 0;
    std::string description;       // free text from the planner (heap spec)
};

// Loads and validates a plan file; throws PlanError naming the problem (truncated, wrong version, out of range).
PlanBundle load_plan_file(const std::string& path);
PlanBundle parse_plan_file(const uint8_t* data, size_t size);

// Writes a plan file atomically: a temporary file beside `path`, renamed over it once complete, so that no reader
// ever sees a partial file. Validates what it writes as the loader would (PlanError), so that it never writes a
// file the loader refuses; SysError when the file cannot be written.
void save_plan_file(const std::string& path, const PlanView& plan, const ObjectTableView& table,
                    const int32_t* root_objects, uint64_t num_roots, uint64_t expected_digest, uint64_t seed,
                    const std::string& description);

}  // namespace compactor
