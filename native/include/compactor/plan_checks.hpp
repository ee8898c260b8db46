// Completes an object table and a plan whose arrays were filled from outside (numpy arrays in the Python binding,
// sections of a plan file in the loader): the array-length checks, the derived index and the validation, in one
// place so that both ways in refuse the same inputs with the same messages.
#pragma once

#include <cstdint>
#include <vector>

#include "compactor/heap_space.hpp"

namespace compactor {

// Checks the per-object arrays agree in length and the references match num_refs, builds ref_start, and validates
// the table against heap_size and the roots (object indices, -1 = null) against the table; throws PlanError.
void assemble_object_table(ObjectTable& t, const std::vector<int32_t>& roots, uint64_t heap_size);

// Checks the per-chunk and the per-page arrays agree in length, builds the forwarding table (derive_chunks) and
// validates the plan (validate_plan); throws PlanError.
void assemble_plan(PlanData& p);

}  // namespace compactor
