// Per-page compaction: produce the content of one to-space page following the plan. These routines are the ones
// the GC thread, SIGBUS handlers and fault-handling threads all call, so they are async-signal-safe: no
// allocation, no locks, no exceptions; they read the from-space and write only into the page-sized target.
#pragma once

#include <cstdint>

#include "compactor/plan.hpp"

namespace compactor {

enum class PageKind : uint8_t { Empty, Dense, Sliding };

inline PageKind page_kind(const PlanView& p, uint64_t to_page) {
    if (to_page >= p.num_to_pages) return PageKind::Empty;
    return to_page < p.dense_prefix_pages ? PageKind::Dense : PageKind::Sliding;
}

// Compacts to-space page `to_page` into `target` (page_size bytes). `from_space` is the pre-compact heap image
// (heap_size bytes). For a dense page `target` may be the from-space page itself (in-place update).
// Returns the number of live bytes placed in the page.
uint64_t compact_page(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page);

// The copying half of compact_page alone: the live strides landing in `to_page` copied into `target` (the rest
// zeroed; a dense page copied whole), no reference forwarded. What compaction would cost if it only copied: the
// "live-stride copy" floor. Returns the bytes placed.
uint64_t copy_live_strides(const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t to_page);

// Rewrites references in a root array to post-compact offsets (the pause's root flip).
void update_roots(const PlanView& p, uint32_t* roots, uint64_t num_roots);

}  // namespace compactor
