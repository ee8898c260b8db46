// collect(): chooses what can run here (with the reason for any fallback), runs stop-the-world or concurrent
// compaction, and verifies the result independently of the planner.
#include "compactor/collector.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <cerrno>
#include <sched.h>
#include <sys/mman.h>

#include "compaction_context.hpp"
#include "compactor/errors.hpp"
#include "compactor/object_layout.hpp"
#include "compactor/page_compaction.hpp"
#include "compactor/uffd.hpp"
#include "concurrent.hpp"

namespace compactor {

const char* strategy_name(Strategy s) {
    switch (s) {
        case Strategy::Stw: return "stw";
        case Strategy::Copy: return "copy";
        case Strategy::Move: return "move";
        case Strategy::MoveAlloc: return "move-alloc";
        case Strategy::Hybrid: return "hybrid";
    }
    return "?";
}
const char* fault_mode_name(FaultMode f) { return f == FaultMode::Sigbus ? "sigbus" : "thread"; }
const char* access_name(Access a) {
    switch (a) {
        case Access::Random: return "random";
        case Access::Sequential: return "sequential";
        case Access::HotSet: return "hot-set";
    }
    return "?";
}
const char* backoff_name(Backoff b) { return b == Backoff::Art ? "art" : "futex"; }
const char* think_name(Think t) { return t == Think::Busy ? "busy" : "sleep"; }
const char* app_signal_name(AppSignal s) {
    switch (s) {
        case AppSignal::None: return "none";
        case AppSignal::Sigprof: return "sigprof";
        case AppSignal::Sigalrm: return "sigalrm";
        case AppSignal::Sigusr1: return "sigusr1";
    }
    return "?";
}

Strategy parse_strategy(const std::string& s) {
    std::string names;
    for (Strategy x : kStrategies) {
        if (s == strategy_name(x)) return x;
        names += std::string(names.empty() ? "" : ", ") + strategy_name(x);
    }
    throw std::invalid_argument("unknown strategy '" + s + "' (choose " + names + ")");
}
FaultMode parse_fault_mode(const std::string& s) {
    if (s == "sigbus") return FaultMode::Sigbus;
    if (s == "thread") return FaultMode::Thread;
    throw std::invalid_argument("unknown fault mode '" + s + "' (choose sigbus or thread)");
}
Access parse_access(const std::string& s) {
    for (Access a : {Access::Random, Access::Sequential, Access::HotSet})
        if (s == access_name(a)) return a;
    throw std::invalid_argument("unknown access pattern '" + s + "' (choose random, sequential or hot-set)");
}
Backoff parse_backoff(const std::string& s) {
    if (s == "art") return Backoff::Art;
    if (s == "futex") return Backoff::Futex;
    throw std::invalid_argument("unknown backoff '" + s + "' (choose art or futex)");
}
Think parse_think(const std::string& s) {
    if (s == "busy") return Think::Busy;
    if (s == "sleep") return Think::Sleep;
    throw std::invalid_argument("unknown think '" + s + "' (choose busy or sleep)");
}
AppSignal parse_app_signal(const std::string& s) {
    for (AppSignal a : {AppSignal::None, AppSignal::Sigprof, AppSignal::Sigalrm, AppSignal::Sigusr1})
        if (s == app_signal_name(a)) return a;
    throw std::invalid_argument("unknown signal '" + s + "' (choose none, sigprof, sigalrm or sigusr1)");
}

namespace {

template <typename T>
void check_range(const char* option, T value, T lo, T hi, const char* unit = "") {
    if (!(value >= lo && value <= hi)) {  // also rejects NaN
        std::ostringstream o;
        o << option << " must lie in [" << lo << ", " << hi << "]" << unit << ", got " << value;
        throw std::invalid_argument(o.str());
    }
}

// Numeric options lie in their table range; the others have none.
template <typename T, typename V, typename L, typename H>
void check_option_range(const char* option, const V& value, L lowest, H highest, const char* unit) {
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
        check_range(option, value, static_cast<T>(lowest), static_cast<T>(highest), unit);
}

void check_cpu(const char* option, int cpu, const cpu_set_t& allowed) {
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed)) {
        std::ostringstream o;
        o << option << " names CPU " << cpu << ", which this process may not run on (allowed:";
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &allowed)) o << " " << c;
        o << ")";
        throw std::invalid_argument(o.str());
    }
}

}  // namespace

void validate(const CollectorConfig& c, uint64_t page_size) {
    // The ranges of the options table, in its order; then the checks that need more than one value.
#define COMPACTOR_OPTION(name, type, default_value, lowest, highest, unit, help) \
    check_option_range<type>(#name, c.name, lowest, highest, *unit ? " " unit : "");
#include "compactor/config_options.def"
    if (c.release_chunk % page_size)
        throw std::invalid_argument("release_chunk must be a multiple of the page size (" + std::to_string(page_size) +
                                    " bytes), got " + std::to_string(c.release_chunk));
    if (c.move_min_run.pages > kMaxBatch)
        throw std::invalid_argument("move_min_run must be auto or lie in [1, " + std::to_string(kMaxBatch) +
                                    "] pages, got " + std::to_string(c.move_min_run.pages));
    if (c.tlab % 8)
        throw std::invalid_argument("tlab must be a multiple of 8 bytes, got " + std::to_string(c.tlab));
    if (c.inject_errno != 0 && c.inject_errno != EAGAIN && c.inject_errno != EBUSY && c.inject_errno != ENOMEM &&
        c.inject_errno != kDoubleInstall && c.inject_errno != kPoison)
        throw std::invalid_argument("inject must be EAGAIN, EBUSY, ENOMEM, EEXIST or POISON, got errno " +
                                    std::to_string(c.inject_errno));
    if (c.gc_cpu != -1 || !c.mutator_cpus.empty()) {
        cpu_set_t allowed;
        CPU_ZERO(&allowed);
        if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
            throw std::invalid_argument("gc_cpu/mutator_cpus: sched_getaffinity failed, CPUs cannot be pinned here");
        if (c.gc_cpu != -1) check_cpu("gc_cpu", c.gc_cpu, allowed);
        if (c.mutator_cpus.size() > kMaxMutators)
            throw std::invalid_argument("mutator_cpus names more than " + std::to_string(kMaxMutators) + " CPUs");
        for (int cpu : c.mutator_cpus) check_cpu("mutator_cpus", cpu, allowed);
    }
}

void Counters::add(const Counters& o) {
    static_assert(sizeof(Counters) % sizeof(uint64_t) == 0, "Counters holds uint64_t fields only");
    constexpr size_t n = sizeof(Counters) / sizeof(uint64_t);
    uint64_t a[n], b[n];
    std::memcpy(a, this, sizeof a);
    std::memcpy(b, &o, sizeof b);
    for (size_t i = 0; i < n; ++i) a[i] += b[i];
    std::memcpy(this, a, sizeof a);
}

double percentile_ns(std::vector<uint64_t> v, double q) {
    if (v.empty()) return 0.0;
    const size_t k = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
    const size_t idx = k == 0 ? 0 : std::min(k - 1, v.size() - 1);
    std::nth_element(v.begin(), v.begin() + static_cast<long>(idx), v.end());
    return static_cast<double>(v[idx]);
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Stop-the-world compaction inside the pause: pages in ascending order, each compacted into a scratch page and
// copied over its own to-space page (page p only reads from-space at or above p's start). Dense pages in place.
CollectionStats run_stw(HeapSpace& space, const PlanView& plan) {
    CollectionStats st;
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t ps = plan.page_size;
    update_roots(plan, space.roots().data(), space.roots().size());
    std::vector<uint8_t> scratch(ps);
    uint8_t* heap = space.base();
    for (uint64_t p = 0; p < plan.num_to_pages; ++p) {
        if (page_kind(plan, p) == PageKind::Dense) {
            compact_page(plan, heap, heap + p * ps, p);
        } else {
            compact_page(plan, heap, scratch.data(), p);
            std::memcpy(heap + p * ps, scratch.data(), ps);
        }
    }
    const uint64_t tail = plan.num_to_pages * ps;
    if (tail < space.size()) space.mapping().dontneed(tail, space.size() - tail);
    st.pause_s = seconds_since(t0);
    st.gc_thread_s = st.pause_s;
    st.pages_total = plan.num_to_pages;
    return st;
}

}  // namespace

namespace {

// What can run here: the strategy and fault mode asked for, or the fallback this kernel allows, with the reason.
struct WhatRuns {
    Strategy strategy;
    FaultMode mode;
    std::string fallback;
};

WhatRuns choose_what_runs(const CollectorConfig& cfg) {
    WhatRuns w{cfg.strategy, cfg.faults, ""};
    if (w.strategy == Strategy::Stw) return w;
    ProbeResult pr;
    try {
        pr = probe(cfg.user_mode_only);
    } catch (const UffdUnavailable& e) {
        w.strategy = Strategy::Stw;
        w.fallback = std::string("userfaultfd unavailable, stop-the-world instead: ") + e.what();
    }
    if (w.strategy != Strategy::Stw && !mremap_dontunmap_usable()) {
        w.strategy = Strategy::Stw;
        w.fallback = "mremap(MREMAP_DONTUNMAP) unavailable (Linux >= 5.7 needed): stop-the-world instead";
    }
    if ((w.strategy == Strategy::Move || w.strategy == Strategy::MoveAlloc || w.strategy == Strategy::Hybrid) &&
        !(pr.features & UFFD_FEATURE_MOVE)) {
        w.strategy = Strategy::Copy;
        w.fallback = "this kernel lacks UFFD_FEATURE_MOVE (Linux >= 6.8 needed): COPY instead of MOVE";
    }
    if (w.strategy != Strategy::Stw && w.mode == FaultMode::Sigbus && !(pr.features & UFFD_FEATURE_SIGBUS)) {
        w.mode = FaultMode::Thread;
        w.fallback += std::string(w.fallback.empty() ? "" : "; ") + "this kernel lacks UFFD_FEATURE_SIGBUS: fault thread instead";
    }
    return w;
}

// Test hook (corrupt_new_object): flips payload word 0 of mutator 0's first allocation.
void corrupt_first_new_object_for_test(HeapSpace& space, const CollectionStats& st) {
    if (st.new_object_offsets.empty() || st.new_object_offsets[0].empty()) return;
    const uint64_t identity = layout::new_object_identity(0, 0);
    uint8_t* word = space.base() + st.new_object_offsets[0][0] + layout::payload_offset(layout::new_object_num_refs(identity));
    *reinterpret_cast<uint64_t*>(word) ^= 1;
}

// Explains a digest mismatch: rebuilds the pristine heap, replays the logged writes, and names the first object
// that differs ("" when none does).
std::string first_differing_object(HeapSpace& space, const CollectionStats& st, const ObjectTableView& table,
                                   const int32_t* root_objects) {
    Mapping pristine(space.size());
    materialize_heap(table, pristine.data(), pristine.length());
    std::vector<uint32_t> eroots = root_offsets(table, root_objects, space.roots().size());
    const uint64_t tag_mask = 0xFFFFFFFFull;
    for (const PayloadWrite& w : st.writes) {
        const uint64_t idx = (w.identity & tag_mask) - 1;
        if (idx >= table.count) continue;
        const uint32_t pay = layout::payload_offset(table.num_refs[idx]);
        const uint64_t at = table.offset[idx] + pay + 8 * w.index;
        if (at + 8 <= table.offset[idx] + table.size[idx]) std::memcpy(pristine.data() + at, &w.new_value, 8);
    }
    return first_difference(pristine.data(), eroots.data(), space.base(), space.roots().data(), eroots.size(),
                            space.size());
}

}  // namespace

CollectionOutcome collect(HeapSpace& space, const PlanView& plan, const CollectorConfig& cfg, uint64_t digest_before,
                          const ObjectTableView* table, const int32_t* root_objects) {
    validate(cfg, page_size());
    if (plan.heap_size != space.size())
        throw PlanError("the plan is for a heap of " + std::to_string(plan.heap_size) + " bytes, the space has " +
                        std::to_string(space.size()));
    if (plan.page_size != page_size())
        throw PlanError("the plan was made for " + std::to_string(plan.page_size) + "-byte pages; this kernel uses " +
                        std::to_string(page_size()) + "-byte pages: plan again with page_size=" + std::to_string(page_size()));
    const WhatRuns w = choose_what_runs(cfg);
    const bool stw = w.strategy == Strategy::Stw;
    CollectionOutcome out;
    const uint64_t t_stw = stw ? detail::now_ns() : 0;
    out.stats = stw ? run_stw(space, plan) : detail::run_concurrent(space, plan, cfg, w.strategy, w.mode);
    CollectionStats& st = out.stats;
    if (stw && cfg.trace_events) {  // the whole collection is the pause, on the calling thread
        const uint64_t t_end = t_stw + static_cast<uint64_t>(st.pause_s * 1e9);
        st.traced = true;
        st.trace.push_back(ThreadTrace{"collector",
                                       {TraceEvent{t_stw, 0, 0, static_cast<uint8_t>(TraceKind::Pause),
                                                   static_cast<uint8_t>(TracePhase::Begin), 0, 0},
                                        TraceEvent{t_end, 0, 0, static_cast<uint8_t>(TraceKind::Pause),
                                                   static_cast<uint8_t>(TracePhase::End), 0, 0}},
                                       0});
    }
    st.strategy = strategy_name(w.strategy);
    st.faults = stw ? "none" : fault_mode_name(w.mode);
    st.requested_strategy = strategy_name(cfg.strategy);
    st.fallback = w.fallback;
    st.mutators = stw ? 0 : cfg.mutators;
    if (!stw) st.pages_total = plan.num_to_pages;
    out.expected_digest = digest_after_writes(digest_before, st.writes.data(), st.writes.size());
    if (cfg.corrupt_new_object) corrupt_first_new_object_for_test(space, st);
    try {
        out.verify = verify_compacted(space.base(), space.size(), plan.post_compact_end, space.roots().data(),
                                      space.roots().size(), out.expected_digest, &st.new_object_offsets);
    } catch (const HeapCorruption& e) {
        std::string msg = e.what();
        if (table && root_objects) {
            const std::string diff = first_differing_object(space, st, *table, root_objects);
            if (!diff.empty()) msg += "; first differing object: " + diff;
        }
        throw HeapCorruption(std::string(st.strategy) + "/" + st.faults + " collection: " + msg);
    }
    return out;
}

}  // namespace compactor
