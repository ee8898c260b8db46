// Collections over a materialized heap and a plan: stop-the-world, and concurrent compaction over userfaultfd
// with COPY, MOVE of recycled pages, or MOVE of freshly allocated pages; SIGBUS or fault-thread delivery; mutators.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "compactor/heap_space.hpp"
#include "compactor/move_prices.hpp"
#include "compactor/trace_events.hpp"
#include "compactor/verify.hpp"

namespace compactor {

enum class Strategy { Stw, Copy, Move, MoveAlloc, Hybrid };
enum class FaultMode { Sigbus, Thread };
enum class Access { Random, Sequential, HotSet };
// How a thread waits for a page another thread owns: ART's BackOff (at most 5 sched_yield, then nanosleep of
// 10 us x (i - 5)), or blocking on a futex that every page installation wakes.
enum class Backoff { Art, Futex };
// hybrid's shortest run MOVEd while another thread runs: a number of pages, or auto (0), priced from the machine
// (move_prices.hpp: MOVE a run when shootdown + its MOVE costs less than its COPY).
struct RunLength {
    unsigned pages = 0;
    bool is_auto() const { return pages == 0; }
};

// How a mutator spends its think time between access chains: computing on its CPU, or blocked off it.
enum class Think { Busy, Sleep };
// A signal sent to every mutator during a collection, as the app's own signal sources send them: a profiler's
// SIGPROF (handler samples the clock; SA_RESTART), a timer's SIGALRM (no SA_RESTART: sleeps and waits return EINTR),
// or a SIGUSR1 whose handler reads a root object (touching the heap, so it may fault itself) and checks its header.
enum class AppSignal { None, Sigprof, Sigalrm, Sigusr1 };
// Test hooks: a fraction of COPY/MOVE ioctls fails with an errno before reaching the kernel (EAGAIN, EBUSY,
// ENOMEM); or the GC thread really makes the kernel answer wrongly: kDoubleInstall maps a zero page over the
// last page of its first several-page run by the strategy's method (a genuine EEXIST after partial progress), kPoison poisons its first batch with UFFDIO_POISON and
// marks it mapped (a mutator touching it gets a hardware-error SIGBUS).
constexpr int kDoubleInstall = -1;
constexpr int kPoison = -2;

// Every strategy, in the order reports list them; the names are the ones Python, the runner and JSON use.
constexpr Strategy kStrategies[] = {Strategy::Stw, Strategy::Copy, Strategy::Move, Strategy::MoveAlloc, Strategy::Hybrid};

const char* strategy_name(Strategy s);
const char* fault_mode_name(FaultMode f);
const char* access_name(Access a);
const char* backoff_name(Backoff b);
const char* think_name(Think t);
const char* app_signal_name(AppSignal s);
Strategy parse_strategy(const std::string& s);   // throws std::invalid_argument naming the choices
FaultMode parse_fault_mode(const std::string& s);
Access parse_access(const std::string& s);
Backoff parse_backoff(const std::string& s);
Think parse_think(const std::string& s);
AppSignal parse_app_signal(const std::string& s);

constexpr unsigned kMaxMutators = 256;
constexpr unsigned kMaxBatch = 4096;

// Every option of one collection, with its default: the rows of config_options.def (the one definition; Python
// binds this struct, the runner parses its flags into it, validate() checks it for both).
struct CollectorConfig {
#define COMPACTOR_OPTION(name, type, default_value, lowest, highest, unit, help) type name = default_value;
#include "compactor/config_options.def"
};

// Throws std::invalid_argument naming the option, the value and the allowed range. `page_size` bounds the sizes.
void validate(const CollectorConfig& cfg, uint64_t page_size);

constexpr int kLatencyBuckets = 40;  // log2 histogram of fault latency in ns
constexpr int kRunLengthBuckets = 13;  // log2 histogram of run lengths: 1 to 4096 pages

// Per-thread counters: plain integers only, so that a thread can update its own on the signal path and the
// finish can sum them field by field (add()).
struct Counters {
    // GC-thread time split (ns): compaction (memcpy + reference update), installing (ioctls, and the first touch
    // of fresh pages for move-alloc), from-space release, waiting for pages mutators hold.
    uint64_t gc_compact_ns, gc_install_ns, gc_release_ns, gc_wait_ns;
    // pages by method
    uint64_t pages_copy, pages_move, pages_move_batched, pages_dense_move, pages_zeropage, pages_copy_fallback_pool,
        pages_copy_fallback_ebusy, pages_copy_short_run, pages_by_mutators;
    uint64_t ioctl_copy, ioctl_move, ioctl_zeropage, bytes_copied, bytes_moved;
    uint64_t eagain, eexist, eexist_moved, ebusy, enomem, enoent, injected;
    uint64_t madvise_calls, released_bytes;
    uint64_t faults_handled, mutator_accesses, mutator_writes, futex_waits;
    uint64_t latency_histogram[kLatencyBuckets];
    // Fresh pages above the post-compact end, first touched by allocating mutators, by method (the zero page is
    // pages_zeropage): a zeroed page MOVEd in (ZeroAndMoveFreePage), or COPYd when that MOVE answered EBUSY.
    // fresh_install_ns: the time spent installing them (the handler's part: a store into a ZEROPAGE page then takes
    // a second, ordinary write fault that no handler sees; the install floor's fresh_* rows include it).
    uint64_t pages_fresh_zero_and_move, pages_fresh_copy, fresh_install_ns;
    // What the app sees. fault_ns: time mutators spent in fault resolution (the sum of the latency samples).
    // Accesses and time per mutator before the pause (pre_pause_ms) and during the phase: from the end of the
    // pause to the moment every to-space page was mapped (ART's AppSlowPathDuringGc window).
    uint64_t fault_ns, pre_pause_accesses, pre_pause_ns, phase_accesses, phase_ns;
    // Allocation: objects and bytes allocated in the phase, TLABs taken, allocations refused (the free space was
    // used up); UI mutators: frames, and frames whose accesses ran past the next vsync.
    uint64_t new_objects, allocated_bytes, tlabs, alloc_failures, frames, frames_late;
    // Runs the GC thread installed with MOVE and with COPY, by length (hybrid's decisions) (bucket i: 2^i <= pages < 2^(i+1)).
    uint64_t runs_moved[kRunLengthBuckets], runs_copied[kRunLengthBuckets];
    uint64_t shootdowns_learned;  // hybrid (priced): GC MOVEs under load its shootdown price learned from
    // The `signal` option: signals sent to mutators (tgkill calls that succeeded), handler runs (standard signals
    // sent while one is pending coalesce), handler runs that interrupted a SIGBUS handler waiting for a page another
    // thread owns, SIGUSR1 handlers' reads of a root object, and the faults those reads took (each resolved by a
    // SIGBUS handler nested in the signal's; fault-thread mode: by the fault thread, not counted).
    uint64_t signals_sent, signals_handled, signals_in_fault_wait, signal_heap_reads, signal_heap_faults;
    // Dense-prefix pages (a young collection: the old generation) installed with COPY: a subset of pages_copy and
    // its fallbacks (pages_dense_move counts the MOVEd ones).
    uint64_t pages_dense_copy;

    void add(const Counters& o);
};
static_assert(std::is_trivially_copyable<Counters>::value && std::is_standard_layout<Counters>::value,
              "Counters must stay plain data: it is updated on the signal path");

// System-wide interrupt counts over the concurrent phase (/proc/interrupts, summed over CPUs); -1 where the
// kernel has no such row (arm64 has no TLB-shootdown IPIs to count).
struct InterruptDelta {
    int64_t tlb_shootdowns = -1;
    int64_t function_call = -1;
};

struct CollectionStats : Counters {
    CollectionStats() : Counters{} {}
    std::string strategy;     // what actually ran
    std::string faults;
    std::string requested_strategy;
    std::string fallback;     // why a fallback happened ("" when none)
    unsigned mutators = 0;
    unsigned cpus_online = 0, threads_needed = 0;  // CPUs this process may run on; GC + mutators (+ fault thread)
    double pause_s = 0, gc_thread_s = 0, gc_thread_cpu_s = 0, concurrent_s = 0, finish_s = 0;
    uint64_t pages_total = 0;
    uint64_t minor_faults = 0, major_faults = 0, gc_minor_faults = 0;
    uint64_t gc_voluntary_switches = 0, gc_involuntary_switches = 0;
    // swapped > 0: pages paged out before the pause (swap entries in /proc/self/pagemap), and the system-wide
    // pswpin/pswpout of /proc/vmstat over the concurrent phase (-1 where unreadable).
    uint64_t pages_paged_out = 0;
    int64_t swap_ins = -1, swap_outs = -1;
    InterruptDelta interrupts;
    std::vector<uint64_t> latency_samples_ns;  // raw samples (up to max_samples)
    std::vector<PayloadWrite> writes;          // every logged mutator write
    // Per mutator: the offsets of the objects it allocated during the phase, in allocation order (identities and
    // contents follow from the mutator and the allocation number: object_layout.hpp).
    std::vector<std::vector<uint32_t>> new_object_offsets;
    bool priced = false;         // hybrid followed `prices` (move_min_run auto)
    MovePrices prices;
    double shootdown_ns_learned = 0;  // the shootdown price at the end of the phase (from prices.shootdown_ns)
    double suspend_s = 0;        // raising the pause's checkpoint until every mutator had parked
    double app_slow_path_s = 0;  // end of the pause until every to-space page was mapped (AppSlowPathDuringGc)
    // trace_events > 0: each thread's recorded events (trace_events.hpp); `traced` false: no trace was asked for.
    bool traced = false;
    std::vector<ThreadTrace> trace;
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
