// Reading plan files: one self-contained file with a heap (object table and roots), its plan and the
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

}  // namespace compactor
