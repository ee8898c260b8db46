// Internal: the state every thread of one concurrent compaction shares (the page state machine: page_states.hpp).
// Everything reachable from a fault path here is async-signal-safe: atomics, memcpy, ioctl, clock_gettime.
#pragma once

#include <atomic>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <memory>
#include <thread>
#include <unistd.h>
#include <vector>

#include "compactor/collector.hpp"
#include "compactor/mapping.hpp"
#include "compactor/move_prices.hpp"
#include "compactor/uffd.hpp"
#include "page_states.hpp"

namespace compactor::detail {

inline uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

inline void sleep_for_ns(uint64_t ns) {
    timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
    nanosleep(&ts, nullptr);
}

struct Rng {
    uint64_t s;
    uint64_t next() {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

// Per-thread state: buffers prepared before the phase and counters merged after it. Never shared.
struct ThreadCtx {
    uint8_t* buffer = nullptr;      // pre-populated page(s): COPY source / COPY fallback
    uint8_t* fresh = nullptr;       // move-alloc: never-touched pages, first-touched before compaction
    Rng rng{1};
    Counters counters{};            // page / ioctl / error counters of this thread (plain data)
    std::vector<uint64_t> samples;  // fault latency (ns), capacity reserved up front
    std::vector<PayloadWrite> writes;
    std::vector<uint32_t> new_objects;  // mutators: offsets of the objects this one allocated, in allocation order
    TraceBuffer trace;              // trace_events: this thread's events (capacity reserved up front; off: 0)
    bool is_gc = false;
    // Signals (app_signals.cpp). Inside a SIGBUS handler: the signal mask of the code it interrupted (the waits of
    // wait_until_mapped reopen it), else null; whether a wait has it open now. `may_touch_heap`: the mutator is
    // running (not parked at the pause's checkpoint), so its SIGUSR1 handler may read the heap, as an ART thread
    // may only while it holds the mutator lock. Written by the thread itself, read by its own handlers.
    const sigset_t* interrupted_mask = nullptr;
    volatile sig_atomic_t in_fault_wait = 0;
    volatile sig_atomic_t may_touch_heap = 0;
    volatile sig_atomic_t in_app_signal = 0;  // inside the `signal` option's handler
    Rng signal_rng{2};  // the SIGUSR1 handler's choices (the mutator's own rng may be mid-update when it runs)
};

struct Context {
    PlanView plan;
    CollectorConfig cfg;
    Strategy strategy = Strategy::Copy;
    FaultMode mode = FaultMode::Sigbus;
    uint8_t* to_space = nullptr;    // the moving space (registered MISSING)
    uint8_t* from_space = nullptr;  // the pre-compact image, mremapped away in the pause
    uint64_t heap_size = 0, ps = 0, num_pages = 0;
    const uint32_t* roots = nullptr;
    uint64_t num_roots = 0;
    const Userfaultfd* uffd = nullptr;
    // hybrid with move_min_run auto: the prices its decisions follow (this machine's, or a what-if's), with the
    // shootdown learned during the run: what the GC thread's MOVEs under load cost beyond the model's MOVE (only
    // the GC thread writes it; every installer reads it, relaxed: a stale value only delays the correction).
    bool priced = false;
    MovePrices prices;
    std::atomic<uint64_t> shootdown_ns_learned{0};

    MovePrices current_prices() const {
        MovePrices p = prices;
        p.shootdown_ns = static_cast<double>(shootdown_ns_learned.load(std::memory_order_relaxed));
        return p;
    }
    std::unique_ptr<PageStates> page_states;  // every to-space page's state (page_states.hpp)

    // From-space reclamation: [reclaim_boundary, heap_size) is no longer read by any compaction.
    std::atomic<uint64_t> reclaim_boundary{0};
    // MOVE: recycled from-space pages are handed out top-down from [recycle_floor(), recycle_cursor).
    std::atomic<uint64_t> recycle_cursor{0};
    uint64_t dense_end = 0;
    // Fresh pages take recycled pages too, also after the last to-space page is mapped, when the GC thread unmaps
    // the from-space: it closes the pool and waits for the users in flight (both sides seq_cst, so that either
    // the user sees the pool closed or the GC sees the user).
    std::atomic<bool> recycle_pool_closed{false};
    std::atomic<unsigned> fresh_pool_users{0};

    std::atomic<uint64_t> progress{0};    // pages installed so far (the watchdog's heartbeat)
    std::atomic<bool> abort{false};
    std::atomic<bool> unregistered{false};
    std::atomic<bool> stop_mutators{false};
    std::atomic<bool> start_mutators{false};
    std::atomic<bool> gc_stalled{false};
    std::atomic<unsigned> mutators_ready{0};  // mutators that made their first access (or have nothing to touch)
    // The pause: mutators run before it (pre_pause_ms) until park_mutators is raised, then each counts itself in
    // mutators_parked and waits for start_mutators, as ART's threads do at a suspend-all checkpoint.
    std::atomic<bool> park_mutators{false};
    std::atomic<unsigned> mutators_parked{0};
    uint64_t t_resume_ns = 0;                  // end of the pause (written before start_mutators is released)
    // Every to-space page mapped (the GC thread stores the time, then raises the flag with release order): the
    // end of the app's slow-path window.
    std::atomic<bool> all_mapped{false};
    uint64_t t_all_mapped_ns = 0;
    // Mutators on a CPU now (not sleeping between chains or frames): a MOVE now sends them a shootdown IPI. And
    // the sleeps they began (bumped as one leaves its CPU): its idle CPU still takes the next MOVEs' IPIs
    // (MovePrices::shootdowns_after_sleep), which the GC thread counts with a GcShootdownWatch.
    std::atomic<unsigned> mutators_on_cpu{0};
    std::atomic<uint64_t> mutator_sleeps{0};
    std::atomic<uint64_t> last_sleep_start_ns{0};  // when the latest of those sleeps began (CLOCK_MONOTONIC)
    std::atomic<uint64_t> mutator_sleep_ns{0};     // how long a sleep lasts: an exponential average (1/4 each)
    // Allocation: TLABs are handed out from [alloc_base, heap_size) by alloc_top (the free space above the
    // post-compact end, rounded up to a page: registered and missing during the phase).
    uint64_t alloc_base = 0;
    std::atomic<uint64_t> alloc_top{0};
    std::atomic<int> handlers_in_flight{0};
    // Mutator i's kernel thread id (0 before it starts and after it ends): where the signal source sends signals.
    std::atomic<int>* mutator_tids = nullptr;
    // Backoff::Futex: bumped after every installation that may end a wait; waiters sleep on it while it is
    // unchanged. `futex_waiters` lets installers skip the wake syscall when nobody waits.
    std::atomic<uint32_t> install_epoch{0};
    std::atomic<uint32_t> futex_waiters{0};
    // Zero pages installed by threads without a context of their own (foreign threads faulting on the space).
    std::atomic<uint64_t> orphan_zeropages{0};
    int pagemap_fd = -1;  // /proc/self/pagemap, opened before the phase: tells a real double install from a MOVE
                          // that moved its page and still answered EEXIST (seen racing reclaim on swapped pages)
    std::atomic<int> abort_err{0};
    char abort_reason[256] = {0};

    // Pages installed: wakes threads blocked in Backoff::Futex waits.
    void pages_mapped();

    uint64_t recycle_floor() const {
        const uint64_t r = reclaim_boundary.load(std::memory_order_acquire);
        return r > dense_end ? r : dense_end;
    }
    bool in_space(uint64_t addr) const {
        return addr >= reinterpret_cast<uint64_t>(to_space) && addr < reinterpret_cast<uint64_t>(to_space) + heap_size;
    }
};

// The fault path relies on these being lock-free (async-signal-safe).
static_assert(std::atomic<uint8_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<uint64_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free &&
                  std::atomic<bool>::is_always_lock_free && std::atomic<Context*>::is_always_lock_free,
              "atomics used on the signal path must be lock-free");

// /proc/self/pagemap entry bits.
constexpr uint64_t kPagemapPresent = 1ull << 63, kPagemapSwapped = 1ull << 62;

// Reads the pagemap entries of `n` pages from `addr` through `fd` (/proc/self/pagemap); false when unreadable.
// Async-signal-safe.
inline bool read_pagemap(int fd, uint64_t addr, uint64_t ps, uint64_t* entries, uint64_t n) {
    const ssize_t want = static_cast<ssize_t>(n * 8);
    return fd >= 0 && ::pread(fd, entries, static_cast<size_t>(want), static_cast<off_t>(addr / ps * 8)) == want;
}

// Whether the GC thread's next MOVE is priced with a TLB shootdown: yes while a mutator is on a CPU. After a
// mutator went to sleep, its idle CPU still takes the IPIs of the GC's next MOVEs (prices.shootdowns_after_sleep:
// 2 on this x86 VM, 0 where idle CPUs are skipped) — once per sleep (each 1 ms slice of a longer sleep is one),
// whichever MOVEs come first. Those are worth paying when MOVE saves more than they cost on the pages the GC
// expects to install before the mutator wakes (`horizon_pages()`): then a MOVE now costs no more than one alone
// (not due); otherwise the next MOVEs are priced with the shootdown, and only a run long enough by itself is
// MOVEd. One count for all mutators: with several, a later sleep restarts it for all. (A mutator or the fault
// thread always pays: the GC thread is on a CPU.)
class GcShootdownWatch {
public:
    template <typename Horizon>
    bool due(const Context& ctx, const Horizon& horizon_pages) {
        // acquire: pairs with a sleeping mutator's release, so the sleep it counted first is seen with it.
        if (ctx.mutators_on_cpu.load(std::memory_order_acquire) > 0) return true;
        const uint64_t sleeps = ctx.mutator_sleeps.load(std::memory_order_relaxed);
        if (sleeps != sleeps_seen_) {
            sleeps_seen_ = sleeps;
            moves_since_sleep_ = 0;
        }
        const double owed = ctx.prices.shootdowns_after_sleep - static_cast<double>(moves_since_sleep_);
        if (!(owed > 0)) return false;
        // Priced at the measured shootdown, not the one learned from MOVEs while mutators run: an idle CPU's IPIs
        // cost less (here the first 15 µs, the second 2-4 µs: about the measured 9 µs each; learned: 15-40 µs).
        const MovePrices& p = ctx.prices;
        return horizon_pages() * (p.copy_ns_per_page - p.move_ns_per_page) <= owed * p.shootdown_ns;
    }
    // `ioctls` MOVE ioctls issued (a run takes more than one after a partial install).
    void moved(uint64_t ioctls) {
        if (moves_since_sleep_ < kNone) moves_since_sleep_ += ioctls;
    }

private:
    static constexpr uint64_t kNone = ~0ull >> 1;  // no mutator has slept yet (owes nothing)
    uint64_t sleeps_seen_ = 0, moves_since_sleep_ = kNone;
};

// Whether a run of `pages` contiguous to-space pages is installed with MOVE (else COPY): the strategy's policy,
// in one place. `by_gc`: the GC thread installs it (mutators and the fault thread install single pages);
// `shootdown_due`: a MOVE now pays a TLB shootdown (always for a mutator; GcShootdownWatch for the GC thread).
inline bool install_with_move(const Context& ctx, uint64_t pages, bool by_gc, bool shootdown_due) {
    switch (ctx.strategy) {
        case Strategy::Move:
        case Strategy::MoveAlloc: return true;
        case Strategy::Hybrid:
            // Priced (move_min_run auto): MOVE when it is cheaper at this machine's prices, the shootdown included
            // when one is due. Fixed: MOVE where it costs no shootdown IPI (the GC thread's runs while no mutator
            // runs), else only runs of at least move_min_run pages; mutators' pages COPY.
            if (ctx.priced) return move_is_cheaper(ctx.current_prices(), pages, shootdown_due);
            return by_gc && (ctx.cfg.mutators == 0 || pages >= ctx.cfg.move_min_run.pages);
        default: return false;
    }
}

// A single page installed by a mutator or the fault thread: MOVE or COPY (the GC thread is on a CPU).
inline bool install_page_with_move(const Context& ctx) { return install_with_move(ctx, 1, false, true); }

// hybrid: the shortest GC run it MOVEs now (kMoveNever: none; 0 without mutators under the fixed policy).
inline uint64_t hybrid_min_run(const Context& ctx, bool shootdown_due) {
    if (ctx.priced) return break_even_run(ctx.current_prices(), shootdown_due);
    return ctx.cfg.mutators > 0 ? ctx.cfg.move_min_run.pages : 0;
}

// Records why the run must stop (first caller wins) and raises the abort flag. Async-signal-safe.
void request_abort(Context& ctx, int err, const char* why);

// Hands out up to `want` contiguous recycled from-space pages; returns how many (0 = pool empty) and the start.
uint64_t recycle_pages(Context& ctx, uint64_t want, uint8_t** start);

// What a run installs, and why with COPY (selects the counter): compacted pages (COPY as the policy chose, or
// because the recycle pool was empty, the MOVE answered EBUSY, or the run was too short to MOVE), or a fresh page
// above the post-compact end that an allocating mutator touched first.
enum class InstallReason { Compacted, PoolEmpty, Ebusy, ShortRun, FreshPage };

// Installs `npages` compacted pages from `src` at to-space page `first_page` with MOVE (`move`) or COPY,
// handling EAGAIN (retry), EBUSY (MOVE -> COPY), ENOMEM (bounded retries, then abort). EEXIST means a page this
// thread claimed was already mapped — a double install — and aborts the run as corrupt. `dense` and `why` only
// select counters. Returns false when the run was aborted.
bool install_pages(Context& ctx, ThreadCtx& tc, uint64_t first_page, uint8_t* src, uint64_t npages, bool move,
                   bool dense, InstallReason why);

// A mutator's or the fault thread's resolution of one faulting page: claim it and compact + install it, or wait
// (sched_yield, then growing nanosleep) while another thread owns it. Returns true when this call installed the
// page (its COPY/MOVE/ZEROPAGE already woke any faulter on it). Async-signal-safe.
bool resolve_fault(Context& ctx, ThreadCtx* tc, uint64_t page);

// A trace slice of the calling thread's buffer (`tc` may be null: nothing is recorded): Begin now, End when the
// scope ends. Off (trace_events 0): one predictable branch each.
class TraceSlice {
public:
    TraceSlice(ThreadCtx* tc, TraceKind k, uint64_t arg0 = 0, uint64_t arg1 = 0)
        : buf_(tc && tc->trace.on() ? &tc->trace : nullptr), kind_(k) {
        if (buf_) buf_->record(k, TracePhase::Begin, arg0, arg1);
    }
    ~TraceSlice() {
        if (buf_) buf_->record(kind_, TracePhase::End, end_arg0_, end_arg1_);
    }
    void set_end_args(uint64_t arg0, uint64_t arg1) { end_arg0_ = arg0, end_arg1_ = arg1; }
    TraceSlice(const TraceSlice&) = delete;
    TraceSlice& operator=(const TraceSlice&) = delete;

private:
    TraceBuffer* buf_;
    TraceKind kind_;
    uint64_t end_arg0_ = 0, end_arg1_ = 0;
};

// Records one fault-latency sample in the thread's histogram and sample log.
void record_latency(ThreadCtx& tc, uint64_t ns, uint64_t max_samples);

// Waits until to-space page `page` is mapped (or the range was unregistered) with the configured backoff.
void wait_until_mapped(Context& ctx, ThreadCtx* tc, uint64_t page);

// Mutator thread body (mutators.cpp).
void run_mutator(Context& ctx, ThreadCtx& tc, unsigned index);

// Makes `tc` the context the SIGBUS handler finds for the calling thread (concurrent.cpp); the calling thread's.
void set_thread_ctx(ThreadCtx* tc);
ThreadCtx* thread_ctx();

// The signals a SIGBUS handler (and the app-signal handlers) block while they run: every signal that is not
// raised synchronously by the faulting instruction itself (SIGBUS, SIGSEGV, SIGILL, SIGFPE, SIGTRAP, SIGSYS and
// SIGABRT stay deliverable).
void fill_async_signals(sigset_t* set);

// Hands a signal to a handler this process had before a collection replaced it; false when that was SIG_DFL or
// SIG_IGN (nothing ran). Async-signal-safe.
bool call_previous(const struct sigaction& previous, int sig, siginfo_t* si, void* uc);

// A SIGBUS handler's wait for a page another thread owns, with the interrupted code's signal mask reopened for its
// duration (a no-op outside a SIGBUS handler): signals deferred while the handler owned a page, or sent during the
// wait, are taken now; their handlers may touch the heap, and a fault there is resolved by a nested SIGBUS
// handler (SA_NODEFER), which the open wait leaves free to claim pages: this thread owns none while it waits.
class SignalWindow {
public:
    explicit SignalWindow(ThreadCtx* tc) : tc_(tc) {}
    void open();  // idempotent; async-signal-safe
    ~SignalWindow();

private:
    ThreadCtx* tc_;
    sigset_t saved_;
    sig_atomic_t was_in_wait_ = 0;
    bool open_ = false;
};

// The `signal` option: handlers installed and a source thread sending `cfg.signal` to every mutator
// `cfg.signal_hz` times a second from start() to stop(); the previous handlers are restored by stop().
class AppSignals {
public:
    explicit AppSignals(Context& ctx) : ctx_(ctx) {}
    void start();
    void stop();  // idempotent: the source joined, then the previous handler restored
    uint64_t sent() const { return sent_; }
    ~AppSignals() { stop(); }

private:
    void Run();
    Context& ctx_;
    std::thread source_;
    std::atomic<bool> stop_{false};
    uint64_t sent_ = 0;
    bool installed_ = false;
    int signo_ = 0;
};

// Pins the calling thread to `cpu` (validated beforehand against the allowed set); -1: left as it is.
void pin_to(int cpu);

}  // namespace compactor::detail
