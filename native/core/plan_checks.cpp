#include "compactor/plan_checks.hpp"

#include <string>

#include "compactor/errors.hpp"
#include "compactor/heap_image.hpp"

namespace compactor {

void assemble_object_table(ObjectTable& t, const std::vector<int32_t>& roots, uint64_t heap_size) {
    const size_t n = t.offset.size();
    if (t.size.size() != n || t.num_refs.size() != n || t.identity.size() != n)
        throw PlanError("object table: arrays differ in length");
    t.ref_start.resize(n + 1);
    t.ref_start[0] = 0;
    for (size_t i = 0; i < n; ++i) t.ref_start[i + 1] = t.ref_start[i] + t.num_refs[i];
    if (t.ref_start[n] != t.refs.size())
        throw PlanError("object table: refs has " + std::to_string(t.refs.size()) + " entries, num_refs sums to " +
                        std::to_string(t.ref_start[n]));
    validate_object_table(t.view(), heap_size);
    root_offsets(t.view(), roots.data(), roots.size());  // throws for a root naming no object
}

void assemble_plan(PlanData& p) {
    if (p.chunk_offset.size() != p.live_words.size()) throw PlanError("plan: chunk_offset and live_words differ in length");
    if (p.first_obj.size() != p.first_obj_header.size() || p.first_obj.size() != p.pre_compact_offset.size())
        throw PlanError("plan: per-page arrays differ in length");
    p.derive_chunks();
    validate_plan(p.view());
}

}  // namespace compactor
