// Collections over a materialized heap and a plan: stop-the-world, and concurrent compaction over userfaultfd
// with COPY, MOVE of recycled pages, or MOVE of freshly allocated pages; SIGBUS or fault-thread delivery; mutators.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "compactor/heap_space.hpp"
#include "compactor/verify.hpp"

namespace compactor {

enum class Strategy { Stw, Copy, Move, MoveAlloc };
enum class FaultMode { Sigbus, Thread };
enum class Access { Random, Sequential, HotSet };

const char* strategy_name(Strategy s);
const char* fault_mode_name(FaultMode f);
const char* access_name(Access a);
Strategy parse_strategy(const std::string& s);   // throws std::invalid_argument naming the choices
FaultMode parse_fault_mode(const std::string& s);
Access parse_access(const std::string& s);

// Test hook: a fraction of COPY/MOVE ioctls fails with `err` before reaching the kernel.
struct FaultInjection {
    double fraction = 0.0;
    int err = 0;  // EAGAIN, EBUSY or ENOMEM
};

struct CollectorConfig {
    Strategy strategy = Strategy::Copy;
    FaultMode faults = FaultMode::Sigbus;
    unsigned mutators = 0;
    unsigned batch = 64;                 // pages per MOVE/COPY run (1 = per page)
    Access access = Access::Random;
    uint64_t seed = 1;
    double watchdog_seconds = 10.0;
    bool user_mode_only = true;
    uint64_t release_chunk = 2u << 20;   // COPY: from-space released with MADV_DONTNEED in chunks of this size
    double write_fraction = 0.05;        // share of mutator accesses that write a payload word
    unsigned hops = 3;                   // references followed per mutator access
    uint64_t max_samples = 1u << 20;     // raw fault-latency samples kept
    FaultInjection inject;
    double stall_seconds = 0.0;          // test hook: the GC thread stalls holding a page
};

constexpr int kLatencyBuckets = 40;  // log2 histogram of fault latency in ns

struct CollectionStats {
    std::string strategy;     // what actually ran
    std::string faults;
    std::string requested_strategy;
    std::string fallback;     // why a fallback happened ("" when none)
    unsigned mutators = 0;
    double pause_s = 0, gc_thread_s = 0, gc_thread_cpu_s = 0, concurrent_s = 0, finish_s = 0;
    // GC-thread time split (ns): compaction (memcpy + reference update), installing ioctls, from-space release.
    uint64_t gc_compact_ns = 0, gc_install_ns = 0, gc_release_ns = 0, gc_wait_ns = 0;
    // pages by method
    uint64_t pages_copy = 0, pages_move = 0, pages_move_batched = 0, pages_dense_move = 0, pages_zeropage = 0,
             pages_copy_fallback_pool = 0, pages_copy_fallback_ebusy = 0, pages_copy_fallback_error = 0,
             pages_by_mutators = 0, pages_total = 0;
    uint64_t ioctl_copy = 0, ioctl_move = 0, ioctl_zeropage = 0, bytes_copied = 0, bytes_moved = 0;
    uint64_t eagain = 0, eexist = 0, ebusy = 0, enomem = 0, enoent = 0, injected = 0;
    uint64_t madvise_calls = 0, released_bytes = 0;
    uint64_t minor_faults = 0, gc_minor_faults = 0;
    uint64_t faults_handled = 0, mutator_accesses = 0, mutator_writes = 0;
    std::array<uint64_t, kLatencyBuckets> latency_histogram{};
    std::vector<uint64_t> latency_samples_ns;  // raw samples (up to max_samples)
    std::vector<PayloadWrite> writes;          // every logged mutator write
};

struct CollectionOutcome {
    CollectionStats stats;
    VerifyReport verify;
    uint64_t expected_digest = 0;
};

// Runs one collection of `space` (already reset to the pristine heap whose digest is `digest_before`) following
// `plan`, then verifies. Throws HeapCorruption (with the first differing object when `table` is given),
// WatchdogTimeout, UffdUnavailable, SysError. Never needs the GIL: call it with the GIL released.
CollectionOutcome collect(HeapSpace& space, const PlanView& plan, const CollectorConfig& cfg, uint64_t digest_before,
                          const ObjectTableView* table, const int32_t* root_objects);

// Percentiles from raw samples (true order statistics); q in [0, 1].
double percentile_ns(std::vector<uint64_t> samples, double q);

}  // namespace compactor
