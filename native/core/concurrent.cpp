// Concurrent compaction over userfaultfd, after ART's CMC: the compaction pause (root flip, mremap with
// MREMAP_DONTUNMAP onto a from-space, MISSING registration), the concurrent phase (GC thread walking to-space
// pages high to low; mutators resolving their own faults in SIGBUS handlers, or a fault-handling thread), and
// the finish (drain, unregister, release the from-space). No Python and no GIL anywhere below.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <fcntl.h>
#include <unistd.h>
#include <vector>
#include <cstring>
#include <ctime>
#include <mutex>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <thread>

#include "compaction_context.hpp"
#include "compactor/errors.hpp"
#include "compactor/page_compaction.hpp"
#include "concurrent.hpp"
#include "measure_helpers.hpp"

namespace compactor::detail {

namespace {

std::atomic<Context*> g_active{nullptr};
struct sigaction g_prev_sigbus;
thread_local ThreadCtx* t_ctx __attribute__((tls_model("initial-exec"))) = nullptr;

void chain_sigbus(int sig, siginfo_t* si, void* uc) {
    if (call_previous(g_prev_sigbus, sig, si, uc)) return;
    // Default action: re-executing the access raises SIGBUS again with the default disposition.
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, nullptr);
}

// Whether a SIGBUS at `addr` is userfaultfd's missing-page fault that this collection must resolve: the kernel
// raises those with BUS_ADRERR (a hardware error or a poisoned page raises BUS_MCEERR_*), and the page is either
// not yet mapped by the state machine or really absent (a page mapped moments ago by another thread is retried).
bool is_missing_page_fault_of_this_collection(const Context& ctx, const siginfo_t* si, uint64_t addr) {
    if (si->si_code != BUS_ADRERR || !ctx.in_space(addr)) return false;
    const uint64_t page = (addr - reinterpret_cast<uint64_t>(ctx.to_space)) / ctx.ps;
    if (!ctx.page_states->is_mapped(page)) return true;
    unsigned char resident = 0;
    void* start = reinterpret_cast<void*>(addr & ~(ctx.ps - 1));
    return ::mincore(start, ctx.ps, &resident) == 0 && (resident & 1);  // mapped: the access is simply retried
}

void sigbus_handler(int sig, siginfo_t* si, void* uc) {
    const int saved_errno = errno;
    Context* ctx = g_active.load(std::memory_order_acquire);
    const uint64_t addr = reinterpret_cast<uint64_t>(si->si_addr);
    if (ctx && is_missing_page_fault_of_this_collection(*ctx, si, addr)) {
        ctx->handlers_in_flight.fetch_add(1, std::memory_order_acq_rel);
        const uint64_t t0 = now_ns();
        ThreadCtx* tc = t_ctx;
        // Every asynchronous signal is blocked here (sa_mask); a wait for another thread's page reopens the mask of
        // the code this handler interrupted (SignalWindow), which may itself be a signal handler's (nested faults).
        // Only where the app has a signal source: otherwise nothing is deferred, and a wait makes no mask calls.
        const sigset_t* outer_mask = tc ? tc->interrupted_mask : nullptr;
        if (tc) {
            if (ctx->cfg.signal != AppSignal::None) tc->interrupted_mask = &static_cast<ucontext_t*>(uc)->uc_sigmask;
            if (tc->in_app_signal) tc->counters.signal_heap_faults += 1;
        }
        {
            const uint64_t page = (addr - reinterpret_cast<uint64_t>(ctx->to_space)) / ctx->ps;
            TraceSlice slice(tc, TraceKind::Fault, page, 1);
            resolve_fault(*ctx, tc, page);
        }
        if (tc) {
            tc->interrupted_mask = outer_mask;
            record_latency(*tc, now_ns() - t0, ctx->cfg.max_samples);
            tc->counters.faults_handled += 1;
        }
        ctx->handlers_in_flight.fetch_sub(1, std::memory_order_acq_rel);
        errno = saved_errno;
        return;
    }
    errno = saved_errno;
    chain_sigbus(sig, si, uc);
}

double thread_cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

rusage usage_of(int who) {
    rusage ru{};
    getrusage(who, &ru);
    return ru;
}

// The TLB-shootdown and function-call IPIs since boot, summed over CPUs (-1 where the kernel has no such row).
InterruptDelta read_interrupts() {
    const InterruptRows rows = read_interrupt_rows();
    return {InterruptRows::sum(rows.tlb), InterruptRows::sum(rows.function_call)};
}

int64_t delta(int64_t before, int64_t after) { return before < 0 || after < 0 ? -1 : after - before; }

// pswpin and pswpout of /proc/vmstat (pages swapped in and out, system-wide); -1 where unreadable.
void read_swap_counts(int64_t& in, int64_t& out) {
    in = out = -1;
    FILE* f = std::fopen("/proc/vmstat", "r");
    if (!f) return;
    char name[64];
    unsigned long long v;
    while (std::fscanf(f, "%63s %llu", name, &v) == 2) {
        if (std::strcmp(name, "pswpin") == 0) in = static_cast<int64_t>(v);
        else if (std::strcmp(name, "pswpout") == 0) out = static_cast<int64_t>(v);
    }
    std::fclose(f);
}

// Pages out a seeded share of the heap's pages (runs of adjacent chosen pages in one call), as reclaim does to a
// background app; returns how many pages became swap entries (pagemap), 0 where the kernel has no swap.
uint64_t page_out_share(uint8_t* base, uint64_t pages, uint64_t ps, double share, uint64_t seed, int pagemap_fd) {
    Rng rng{seed * 0x2545F4914F6CDD1Dull + 3};
    uint64_t run = 0;
    for (uint64_t p = 0; p <= pages; ++p) {
        const bool chosen = p < pages && rng.uniform() < share;
        if (chosen) {
            ++run;
        } else if (run) {
            ::madvise(base + (p - run) * ps, run * ps, 21 /* MADV_PAGEOUT */);
            run = 0;
        }
    }
    uint64_t swapped = 0;
    std::vector<uint64_t> entries(4096);
    for (uint64_t p = 0; p < pages; p += entries.size()) {
        const uint64_t n = std::min<uint64_t>(entries.size(), pages - p);
        if (!read_pagemap(pagemap_fd, reinterpret_cast<uint64_t>(base) + p * ps, ps, entries.data(), n)) break;
        for (uint64_t i = 0; i < n; ++i) swapped += (entries[i] & kPagemapSwapped) != 0;
    }
    return swapped;
}

unsigned allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return static_cast<unsigned>(CPU_COUNT(&set));
}

// The first from-space offset above every live word: from there up, nothing is ever read.
uint64_t end_of_live_data(const PlanView& p) {
    for (uint64_t c = p.num_chunks; c-- > 0;) {
        const uint64_t bits = p.chunks[c].live_words;
        if (bits) return (c * 64 + 64 - static_cast<uint64_t>(__builtin_clzll(bits))) * 8;
    }
    return 0;
}

// The GC thread's current run: contiguous to-space pages, compacted from `top_page` down, installed by one ioctl.
struct CompactionRun {
    uint8_t* region = nullptr;  // `capacity` pages; page `top_page - i` is compacted into slot capacity - 1 - i
    uint64_t capacity = 0;      // pages the region holds
    uint64_t pages = 0;         // pages compacted into it so far
    uint64_t top_page = 0;      // the run's highest to-space page (its first)
    uint64_t claimed_low = 0;   // lowest page claimed for this run (claim-ahead: below `top_page - pages + 1`)
    bool dense = false, pool_empty = false;
    bool expect_short = false;  // hybrid: compacted into the GC's hot buffer for a COPY (the last run was short)
};

// The GC thread of the concurrent phase: walks the to-space pages high to low, claims each, compacts it into its
// current run and installs a run with one ioctl; then waits for the pages mutators own and releases the
// from-space. Each step of the walk is a method; the state they share is the members below.
class GcThread {
public:
    GcThread(Context& ctx, ThreadCtx& tc, Mapping& from, CollectionStats& out)
        : ctx_(ctx), tc_(tc), c_(tc.counters), p_(ctx.plan), ps_(ctx.ps), from_(from), out_(out),
          max_run_pages_(ctx.cfg.batch ? ctx.cfg.batch : 1), lowest_done_(ctx.plan.num_to_pages),
          released_low_(ctx.heap_size),
          // Hybrid with claim_ahead claims a whole run ahead (every page of it PageState::kProcessing before
          // compacting the first), so that mutators wait for the run instead of cutting it into short MOVEs, each
          // a TLB shootdown.
          claim_ahead_(ctx.strategy == Strategy::Hybrid && ctx.cfg.claim_ahead) {}

    void Run() {
        pin_to(ctx_.cfg.gc_cpu);
        t_start_ = now_ns();
        const double cpu0 = thread_cpu_seconds();
        const rusage ru0 = usage_of(RUSAGE_THREAD);
        CompactPagesHighToLow();
        WaitForPagesMutatorsOwn();
        if (!aborted()) {  // every to-space page is mapped: the app's slow-path window ends
            ctx_.t_all_mapped_ns = now_ns();
            ctx_.all_mapped.store(true, std::memory_order_release);
        }
        ReleaseRestOfFromSpace();
        const uint64_t t_end = now_ns();
        out_.gc_thread_s = static_cast<double>(t_end - t_start_) * 1e-9;
        out_.gc_thread_cpu_s = thread_cpu_seconds() - cpu0;
        const rusage ru1 = usage_of(RUSAGE_THREAD);
        out_.gc_minor_faults = static_cast<uint64_t>(ru1.ru_minflt - ru0.ru_minflt);
        out_.gc_voluntary_switches = static_cast<uint64_t>(ru1.ru_nvcsw - ru0.ru_nvcsw);
        out_.gc_involuntary_switches = static_cast<uint64_t>(ru1.ru_nivcsw - ru0.ru_nivcsw);
    }

private:
    bool aborted() const { return ctx_.abort.load(std::memory_order_relaxed); }

    void CompactPagesHighToLow() {
        for (uint64_t page = p_.num_to_pages; page-- > 0;) {
            if (aborted()) break;
            const bool claimed = run_.pages > 0 && page >= run_.claimed_low;  // claimed ahead with the current run
            if (!claimed && !ctx_.page_states->try_claim_for_gc(page)) {
                if (!FlushRun()) break;  // a mutator owns it: the run is broken here
                continue;
            }
            if (!StallForTest()) break;
            const bool dense = page < p_.dense_prefix_pages;
            if (run_.pages > 0 && dense != run_.dense)
                if (!FlushRun()) break;
            if (run_.pages == 0) StartRun(page, dense);
            CompactIntoRun(page, dense);
            if (run_.pages == run_.capacity || page == 0 || (claim_ahead_ && page == run_.claimed_low))
                if (!FlushRun()) break;
        }
        if (!aborted()) FlushRun();
        CloseCompactWindow();
    }

    // Test hook: stall holding the first page the GC claims. False when the run was aborted meanwhile.
    bool StallForTest() {
        if (ctx_.cfg.stall_seconds <= 0 || stalled_) return true;
        stalled_ = true;
        ctx_.gc_stalled.store(true, std::memory_order_release);
        const uint64_t until = now_ns() + static_cast<uint64_t>(ctx_.cfg.stall_seconds * 1e9);
        while (now_ns() < until && !aborted()) {
            timespec ts{0, 5000000};
            nanosleep(&ts, nullptr);
        }
        return !aborted();
    }

    void StartRun(uint64_t page, bool dense) {
        tc_.trace.record(TraceKind::GcRun, TracePhase::Begin, page);
        tc_.trace.record(TraceKind::Compact, TracePhase::Begin, page);
        run_ = CompactionRun{};
        run_.top_page = page;
        run_.dense = dense;
        run_.capacity = max_run_pages_;
        if (!dense) ChooseRunRegion();
        ClaimAhead(page, dense);
    }

    // Where a non-dense run is compacted: the hot buffer (COPY), fresh pages (move-alloc) or recycled from-space
    // pages (MOVE; the hot buffer when the pool is empty).
    void ChooseRunRegion() {
        // Hybrid while mutators run: runs come out as long as the last one did (mutators take pages all over the
        // to-space); after a run too short to MOVE, compact into the hot buffer and COPY instead of into a cold
        // recycled page, until a run reaches move_min_run again.
        const bool short_expected =
            ctx_.strategy == Strategy::Hybrid && last_run_pages_ < hybrid_min_run(ctx_, ctx_.priced && ShootdownDue());
        switch (short_expected ? Strategy::Copy : ctx_.strategy) {
            case Strategy::Copy:
                run_.region = tc_.buffer;
                run_.expect_short = short_expected;
                break;
            case Strategy::MoveAlloc: run_.region = tc_.fresh; break;
            default: {
                const uint64_t n = recycle_pages(ctx_, max_run_pages_, &run_.region);
                if (n) {
                    run_.capacity = n;
                } else {
                    run_.region = tc_.buffer;
                    run_.pool_empty = true;
                }
            }
        }
    }

    void ClaimAhead(uint64_t page, bool dense) {
        run_.claimed_low = page;
        while (claim_ahead_ && run_.claimed_low > 0 && page - (run_.claimed_low - 1) < run_.capacity &&
               (run_.claimed_low - 1 < p_.dense_prefix_pages) == dense) {
            if (!ctx_.page_states->try_claim_for_gc(run_.claimed_low - 1)) break;
            --run_.claimed_low;
        }
    }

    void CompactIntoRun(uint64_t page, bool dense) {
        uint8_t* target = dense ? ctx_.from_space + page * ps_ : run_.region + (run_.capacity - 1 - run_.pages) * ps_;
        if (!compact_since_) compact_since_ = now_ns();
        if (ctx_.strategy == Strategy::MoveAlloc && !dense && !run_.pool_empty) {
            // "Pages must be allocated": the first touch faults a fresh page in; it is installation, not compaction.
            const uint64_t ta = now_ns();
            *reinterpret_cast<volatile uint8_t*>(target) = 0;
            const uint64_t dt = now_ns() - ta;
            c_.gc_install_ns += dt;
            touch_in_window_ += dt;
        }
        compact_page(p_, ctx_.from_space, target, page);
        run_.pages += 1;
    }

    // Compaction time is read per run, not per page: two clock reads (~33 ns each on this VM) per page were 2% of
    // a page's compaction. The window opens at the run's first compact_page and closes when the run is flushed;
    // move-alloc's first touches inside it count as installation.
    void CloseCompactWindow() {
        if (compact_since_) c_.gc_compact_ns += now_ns() - compact_since_ - touch_in_window_;
        compact_since_ = touch_in_window_ = 0;
    }

    // Installs the current run with one ioctl (and its retries). False when the run was aborted.
    bool FlushRun() {
        CloseCompactWindow();
        if (run_.pages == 0) return true;
        const uint64_t first = run_.top_page - run_.pages + 1;
        tc_.trace.record(TraceKind::Compact, TracePhase::End, first, run_.pages);
        uint8_t* src = run_.dense ? ctx_.from_space + first * ps_ : run_.region + (run_.capacity - run_.pages) * ps_;
        // A run in the GC's buffer (pool empty, or hybrid expecting a short run) is COPYed. Otherwise the policy
        // decides for a run of this length.
        const bool due = ctx_.priced && ShootdownDue();  // only the priced policy asks
        const bool move = !run_.pool_empty && !run_.expect_short && install_with_move(ctx_, run_.pages, true, due);
        // Measured prices learn the shootdown from the run; a what-if's (injected) prices stay as given.
        // Learned only from MOVEs while a mutator runs: the shootdown an idle CPU takes after a sleep costs less.
        const bool learn = move && ctx_.priced && ctx_.prices.measured && !run_.dense &&
                           ctx_.mutators_on_cpu.load(std::memory_order_relaxed) > 0;
        const uint64_t install_ns_before = c_.gc_install_ns;  // issue_install_ioctl times the GC's ioctls
        const InstallReason why = run_.pool_empty ? InstallReason::PoolEmpty
                               : ctx_.strategy == Strategy::Hybrid ? InstallReason::ShortRun : InstallReason::Compacted;
        last_run_pages_ = run_.pages;
        const int bucket = 63 - __builtin_clzll(run_.pages);
        (move ? c_.runs_moved : c_.runs_copied)[bucket < kRunLengthBuckets ? bucket : kRunLengthBuckets - 1] += 1;
        const uint64_t moves_before = c_.ioctl_move;
        const bool ok = install_pages(ctx_, tc_, first, src, run_.pages, move, run_.dense, why);
        shootdowns_.moved(c_.ioctl_move - moves_before);
        if (ok && learn) LearnShootdown(c_.gc_install_ns - install_ns_before, run_.pages);
        if (ok) {
            installed_pages_ += run_.pages;
            for (uint64_t q = first; q <= run_.top_page; ++q) ctx_.page_states->mark_mapped(q);
            const uint64_t mapped = ctx_.progress.fetch_add(run_.pages, std::memory_order_relaxed) + run_.pages;
            ctx_.pages_mapped();
            tc_.trace.record(TraceKind::PagesMapped, TracePhase::Counter, mapped);
        }
        tc_.trace.record(TraceKind::GcRun, TracePhase::End, first, run_.pages);
        run_.pages = 0;
        AdvanceReclaimBoundary();
        return ok;
    }

    // hybrid (priced): whether a MOVE now is priced with a shootdown (GcShootdownWatch), with the pages this thread
    // expects to install before the mutator that went to sleep last wakes: what is left of an average sleep, at
    // the GC thread's pace so far.
    bool ShootdownDue() {
        return shootdowns_.due(ctx_, [this] {
            const uint64_t sleep_ns = ctx_.mutator_sleep_ns.load(std::memory_order_relaxed);
            const uint64_t began = ctx_.last_sleep_start_ns.load(std::memory_order_relaxed), now = now_ns();
            if (sleep_ns == 0 || installed_pages_ == 0 || now - began >= sleep_ns) return 0.0;
            const double ns_per_page = static_cast<double>(now - t_start_) / static_cast<double>(installed_pages_);
            return static_cast<double>(sleep_ns - (now - began)) / ns_per_page;
        });
    }

    // hybrid (priced): a MOVE of `pages` pages under load took `ns`; what it took beyond the model's MOVE is this
    // machine's shootdown now (a sibling in a SIGBUS handler or a COPY ioctl acknowledges later than the busy
    // sibling the prices were measured with). An exponential average (1/4 per sample) follows it.
    void LearnShootdown(uint64_t ns, uint64_t pages) {
        const double model = ctx_.prices.move_ns_per_ioctl + static_cast<double>(pages) * ctx_.prices.move_ns_per_page;
        const double implied = static_cast<double>(ns) > model ? static_cast<double>(ns) - model : 0.0;
        const double old = static_cast<double>(ctx_.shootdown_ns_learned.load(std::memory_order_relaxed));
        ctx_.shootdown_ns_learned.store(static_cast<uint64_t>(0.75 * old + 0.25 * implied), std::memory_order_relaxed);
        c_.shootdowns_learned += 1;
    }

    // Lowers the reclaim boundary below the lowest page from which every page up is mapped.
    void AdvanceReclaimBoundary() {
        while (lowest_done_ > 0 && ctx_.page_states->is_mapped(lowest_done_ - 1)) --lowest_done_;
        if (lowest_done_ == p_.num_to_pages) return;
        const uint64_t boundary = lowest_done_ == 0 ? 0 : (p_.pre_compact_offset[lowest_done_] + ps_ - 1) / ps_ * ps_;
        if (boundary < ctx_.reclaim_boundary.load(std::memory_order_relaxed))
            ctx_.reclaim_boundary.store(boundary, std::memory_order_release);
        ReleaseFromSpaceAboveBoundary();
    }

    // COPY: gives the from-space above the reclaim boundary back in release_chunk pieces.
    void ReleaseFromSpaceAboveBoundary() {
        const uint64_t r = ctx_.reclaim_boundary.load(std::memory_order_acquire);
        if (ctx_.strategy != Strategy::Copy) return;
        if (released_low_ <= r || released_low_ - r < ctx_.cfg.release_chunk) return;
        TraceSlice slice(&tc_, TraceKind::Release, 0, (released_low_ - r) >> 20);  // arg1: MiB
        const uint64_t t0 = now_ns();
        for (uint64_t hi = released_low_; hi > r;) {  // release_chunk is a positive page multiple
            const uint64_t lo = hi - r > ctx_.cfg.release_chunk ? hi - ctx_.cfg.release_chunk : r;
            if (::madvise(ctx_.from_space + lo, hi - lo, MADV_DONTNEED) != 0) {
                request_abort(ctx_, errno, "madvise(MADV_DONTNEED) of the from-space failed");
                return;
            }
            c_.madvise_calls += 1;
            hi = lo;
        }
        c_.released_bytes += released_low_ - r;
        c_.gc_release_ns += now_ns() - t0;
        released_low_ = r;
    }

    // Pages that mutators claimed may still be in flight: wait for every page to be mapped.
    void WaitForPagesMutatorsOwn() {
        TraceSlice slice(&tc_, TraceKind::WaitMutators);
        const uint64_t tw = now_ns();
        for (uint64_t q = 0; q < p_.num_to_pages && !aborted(); ++q) wait_until_mapped(ctx_, &tc_, q);
        c_.gc_wait_ns += now_ns() - tw;
    }

    // Releases what is left of the from-space (after an abort, handlers may still read it: the caller unmaps).
    void ReleaseRestOfFromSpace() {
        if (ctx_.abort.load(std::memory_order_acquire)) return;
        TraceSlice slice(&tc_, TraceKind::Release, 1, from_.length() >> 20);  // arg0 1: the munmap; arg1: MiB
        const uint64_t tr = now_ns();
        ctx_.recycle_pool_closed.store(true, std::memory_order_seq_cst);  // no fresh page takes from it any more
        while (ctx_.fresh_pool_users.load(std::memory_order_seq_cst) > 0) sched_yield();
        if (const int err = from_.unmap()) request_abort(ctx_, err, "munmap of the from-space failed");
        c_.gc_release_ns += now_ns() - tr;
    }

    Context& ctx_;
    ThreadCtx& tc_;
    Counters& c_;
    const PlanView& p_;
    const uint64_t ps_;
    Mapping& from_;
    CollectionStats& out_;
    const uint64_t max_run_pages_;
    uint64_t lowest_done_;   // every page in [lowest_done_, num_to_pages) is mapped
    uint64_t released_low_;  // COPY: [released_low_, heap_size) already given back
    const bool claim_ahead_;
    CompactionRun run_;
    bool stalled_ = false;
    uint64_t last_run_pages_ = UINT64_MAX;  // pages in the last run installed (hybrid's predictor of the next run)
    GcShootdownWatch shootdowns_;  // whether its next MOVE pays a shootdown (hybrid's priced policy)
    uint64_t t_start_ = 0;         // when the thread started (CLOCK_MONOTONIC)
    uint64_t installed_pages_ = 0; // pages its runs installed so far
    uint64_t compact_since_ = 0, touch_in_window_ = 0;
};

void fault_thread_main(Context& ctx, ThreadCtx& tc) {
    set_thread_ctx(&tc);
    Event events[64];
    while (!ctx.stop_mutators.load(std::memory_order_acquire) || ctx.handlers_in_flight.load() > 0) {
        pollfd pfd{ctx.uffd->fd(), POLLIN, 0};
        const int pr = ::poll(&pfd, 1, 5);
        if (pr <= 0) continue;
        const long n = ctx.uffd->read_events(events, 64);
        if (n < 0) {
            request_abort(ctx, static_cast<int>(-n), "reading userfaultfd events failed");
            return;
        }
        for (long i = 0; i < n; ++i) {
            if (events[i].kind != EventKind::Pagefault || !ctx.in_space(events[i].address)) continue;
            const uint64_t page = (events[i].address - reinterpret_cast<uint64_t>(ctx.to_space)) / ctx.ps;
            tc.counters.faults_handled += 1;
            TraceSlice slice(&tc, TraceKind::Fault, page, 1);
            // A page installed by this thread was woken by its own ioctl; one installed by another thread was
            // woken by that ioctl too, unless the fault was queued after it: wake those explicitly.
            if (!resolve_fault(ctx, &tc, page))
                ctx.uffd->wake(reinterpret_cast<uint64_t>(ctx.to_space) + page * ctx.ps, ctx.ps);
        }
    }
}

std::mutex g_collection_lock;  // one concurrent compaction per process: the SIGBUS handler is process-wide

}  // namespace

void set_thread_ctx(ThreadCtx* tc) { t_ctx = tc; }
ThreadCtx* thread_ctx() { return t_ctx; }

void pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

namespace {

// One concurrent compaction, phase by phase as ART's MarkCompact::RunPhases names them: the preparation before
// the pause, CompactionPause(), ConcurrentCompactionPhase() (GC thread, mutators, watchdog), FinishPhase().
// Members are declared in the order they must outlive each other: the threads are joined before the buffers
// they use go away.
class ConcurrentCollection {
public:
    ConcurrentCollection(HeapSpace& space, const PlanView& plan, const CollectorConfig& cfg, Strategy strategy,
                         FaultMode mode)
        : space_(space), plan_(plan), cfg_(cfg), mode_(mode), ps_(page_size()),
          max_run_pages_(cfg.batch ? cfg.batch : 1), nthreads_(cfg.mutators + 1),
          gc_buffer_(max_run_pages_ * ps_), gc_fresh_(max_run_pages_ * ps_, true), buffers_(nthreads_ * ps_),
          fresh_(nthreads_ * ps_, true), thread_ctxs_(nthreads_) {
        InitializeContext(strategy);
    }

    CollectionStats Run() {
        PrepareThreads();
        SuspendMutators();
        PrepareMeasurements();
        CompactionPause();
        ConcurrentCompactionPhase();
        FinishPhase();
        MergeCounters();
        if (ctx_.priced) stats_.shootdown_ns_learned = static_cast<double>(ctx_.shootdown_ns_learned.load());
        ThrowIfAborted();
        return std::move(stats_);
    }

private:
    void InitializeContext(Strategy strategy) {
        ctx_.plan = plan_;
        ctx_.cfg = cfg_;
        ctx_.strategy = strategy;
        ctx_.mode = mode_;
        ctx_.to_space = space_.base();
        ctx_.heap_size = space_.size();
        ctx_.ps = ps_;
        ctx_.num_pages = ctx_.heap_size / ps_;
        ctx_.roots = space_.roots().data();
        ctx_.num_roots = space_.roots().size();
        ctx_.dense_end = plan_.dense_prefix_pages * ps_;
        ctx_.page_states = std::make_unique<PageStates>(ctx_.num_pages);
        if (strategy == Strategy::Hybrid && cfg_.move_min_run.is_auto()) {  // measured once per process (~10 ms)
            ctx_.priced = true;
            ctx_.prices = collector_move_prices();
            ctx_.shootdown_ns_learned.store(static_cast<uint64_t>(ctx_.prices.shootdown_ns), std::memory_order_relaxed);
            stats_.priced = true;
            stats_.prices = ctx_.prices;
        }
        ctx_.pagemap_fd = pagemap_.fd;
        ctx_.mutator_tids = mutator_tids_.get();
    }

    // Before the pause: per-thread buffers, prepared so the fault path never allocates; mutators started (they
    // wait for start_mutators).
    void PrepareThreads() {
        std::memset(gc_buffer_.data(), 0, max_run_pages_ * ps_);
        std::memset(buffers_.data(), 0, nthreads_ * ps_);
        for (Mapping* m : {&gc_fresh_, &fresh_}) {
            try { m->hugepage(false); } catch (const SysError&) {}
        }
        gc_.is_gc = true;
        gc_.buffer = gc_buffer_.data();
        gc_.fresh = gc_fresh_.data();
        gc_.rng.s = cfg_.seed * 31 + 7;
        const uint64_t per_thread_samples = cfg_.max_samples / nthreads_ + 1;
        for (unsigned i = 0; i < nthreads_; ++i) {
            ThreadCtx& t = thread_ctxs_[i];
            t.buffer = buffers_.data() + i * ps_;
            t.fresh = fresh_.data() + i * ps_;
            t.rng.s = cfg_.seed * 1000003 + i * 7919 + 1;
            t.signal_rng.s = cfg_.seed * 1000033 + i * 104729 + 2;  // each mutator's SIGUSR1 handler its own roots
            t.samples.reserve(per_thread_samples);
            if (i < cfg_.mutators) t.writes.reserve(1u << 18);
            if (i < cfg_.mutators && cfg_.alloc_rate > 0) t.new_objects.reserve(1u << 16);
            // (The fault thread's context, after the mutators', records only in thread mode.)
            if (cfg_.trace_events && (i < cfg_.mutators || mode_ == FaultMode::Thread)) t.trace.reserve(cfg_.trace_events);
        }
        if (cfg_.trace_events) {
            gc_.trace.reserve(cfg_.trace_events);
            trace_.reserve(cfg_.trace_events);
        }
        for (unsigned i = 0; i < cfg_.mutators; ++i)
            mutators_.emplace_back(run_mutator, std::ref(ctx_), std::ref(thread_ctxs_[i]), i);
        signals_.start();  // the `signal` option: sent to every mutator from now until they are joined
    }

    // The pause's checkpoint: mutators ran for pre_pause_ms; raise it and wait until every one has parked (the
    // time to reach it is reported: ART's time to suspend all threads).
    void SuspendMutators() {
        if (cfg_.mutators == 0) return;
        if (cfg_.pre_pause_ms > 0) sleep_for_ns(static_cast<uint64_t>(cfg_.pre_pause_ms * 1e6));
        const uint64_t t0 = now_ns();
        ctx_.park_mutators.store(true, std::memory_order_release);
        const uint64_t deadline = t0 + static_cast<uint64_t>(cfg_.watchdog_seconds * 1e9);
        while (ctx_.mutators_parked.load(std::memory_order_acquire) < cfg_.mutators && now_ns() < deadline)
            sched_yield();
        stats_.suspend_s = static_cast<double>(now_ns() - t0) * 1e-9;
    }

    void PrepareMeasurements() {
        if (cfg_.swapped > 0)
            stats_.pages_paged_out = page_out_share(space_.base(), ctx_.num_pages, ps_, cfg_.swapped, cfg_.seed, pagemap_.fd);
        stats_.cpus_online = allowed_cpus();
        stats_.threads_needed = 1 + cfg_.mutators + (mode_ == FaultMode::Thread ? 1 : 0);
        self0_ = usage_of(RUSAGE_SELF);
    }

    // Root flip, the heap mremapped onto a from-space, the moving space registered MISSING, the fault handler
    // (SIGBUS handler or fault thread) in place. On failure the heap and its roots are put back.
    void CompactionPause() {
        t_pause_ = now_ns();
        const std::vector<uint32_t> pre_compact_roots = space_.roots();
        update_roots(plan_, space_.roots().data(), space_.roots().size());
        try {
            RemapAndRegister();
        } catch (...) {
            StopMutators();
            if (from_.valid()) from_.remap_dontunmap_to(space_.mapping().address());  // put the heap back
            space_.roots() = pre_compact_roots;
            throw;
        }
        ctx_.uffd = uffd_.get();
        ctx_.from_space = from_.data();
        const uint64_t live_end = (end_of_live_data(plan_) + ps_ - 1) / ps_ * ps_;
        ctx_.reclaim_boundary.store(live_end, std::memory_order_release);
        ctx_.recycle_cursor.store(ctx_.heap_size, std::memory_order_release);
        ctx_.alloc_base = plan_.num_to_pages * ps_;  // TLABs start on the first page above the post-compact end
        ctx_.alloc_top.store(ctx_.alloc_base, std::memory_order_relaxed);
        if (mode_ == FaultMode::Sigbus) InstallSigbusHandler();
        if (mode_ == FaultMode::Thread)
            fault_thread_ = std::thread(fault_thread_main, std::ref(ctx_), std::ref(thread_ctxs_[cfg_.mutators]));
        t_concurrent_ = now_ns();
        ctx_.t_resume_ns = t_concurrent_;  // read by mutators after start_mutators (release) is seen
        stats_.pause_s = static_cast<double>(t_concurrent_ - t_pause_) * 1e-9;
        trace_.record_at(t_pause_, TraceKind::Pause, TracePhase::Begin);
        trace_.record_at(t_concurrent_, TraceKind::Pause, TracePhase::End);
        trace_.record_at(t_concurrent_, TraceKind::Phase, TracePhase::Begin);
        irq0_ = read_interrupts();
        read_swap_counts(swin0_, swout0_);
    }

    void RemapAndRegister() {
        from_ = space_.mapping().remap_dontunmap();
        from_.dontfork();
        uint64_t features = 0;
        if (mode_ == FaultMode::Sigbus) features |= UFFD_FEATURE_SIGBUS;
        uffd_ = std::make_unique<Userfaultfd>(features, cfg_.user_mode_only, true);
        uint64_t range_ioctls = 0;
        IoResult r = uffd_->register_range(space_.mapping().address(), ctx_.heap_size, UFFDIO_REGISTER_MODE_MISSING,
                                           &range_ioctls);
        if (!r.ok()) throw UffdError(r.err, "REGISTER", 0, sys_message("UFFDIO_REGISTER of the moving space", r.err));
    }

    void InstallSigbusHandler() {
        g_active.store(&ctx_, std::memory_order_release);
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = sigbus_handler;
        // Asynchronous signals wait while the handler runs (their handlers may touch the heap: on the page this
        // thread owns, or with its compaction buffer in use); SIGBUS itself stays deliverable (SA_NODEFER), so that
        // a signal handler that runs during a wait (SignalWindow) may fault on the heap and be resolved.
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER;
        fill_async_signals(&sa.sa_mask);
        sigaction(SIGBUS, &sa, &g_prev_sigbus);
        handler_installed_ = true;
    }

    // Unregisters the moving space: faults on it become ordinary ones. A failure is the run's error.
    void UnregisterHeap() {
        const IoResult r = uffd_->unregister_range(space_.mapping().address(), ctx_.heap_size);
        if (!r.ok()) request_abort(ctx_, r.err, "UFFDIO_UNREGISTER of the moving space failed");
        ctx_.unregistered.store(true, std::memory_order_release);
    }

    // Unregisters (if not yet) and closes the userfaultfd; idempotent.
    void CloseUserfaultfd() {
        if (!uffd_) return;
        if (!ctx_.unregistered.load(std::memory_order_acquire)) UnregisterHeap();
        ctx_.uffd = nullptr;
        uffd_.reset();
    }

    void StopMutators() {
        ctx_.stop_mutators.store(true, std::memory_order_release);
        for (auto& t : mutators_)
            if (t.joinable()) t.join();
    }

    // The GC thread compacts while mutators run and resolve their own faults; the watchdog watches progress.
    void ConcurrentCompactionPhase() {
        std::thread gc_thread = StartGcThread();
        RunWatchdogUntilGcDone();
        gc_thread.join();
        t_gc_end_ = now_ns();
        stats_.concurrent_s = static_cast<double>(t_gc_end_ - t_concurrent_) * 1e-9;
        if (ctx_.all_mapped.load(std::memory_order_acquire))
            stats_.app_slow_path_s = static_cast<double>(ctx_.t_all_mapped_ns - t_concurrent_) * 1e-9;
        const InterruptDelta irq1 = read_interrupts();
        int64_t swin1, swout1;
        read_swap_counts(swin1, swout1);
        stats_.swap_ins = delta(swin0_, swin1);
        stats_.swap_outs = delta(swout0_, swout1);
        stats_.interrupts.tlb_shootdowns = delta(irq0_.tlb_shootdowns, irq1.tlb_shootdowns);
        stats_.interrupts.function_call = delta(irq0_.function_call, irq1.function_call);
        trace_.record_at(t_gc_end_, TraceKind::Phase, TracePhase::End);
        if (stats_.interrupts.tlb_shootdowns >= 0) {  // the phase's shootdowns: 0 at its start, the delta at its end
            trace_.record_at(t_concurrent_, TraceKind::TlbShootdowns, TracePhase::Counter, 0);
            trace_.record_at(t_gc_end_, TraceKind::TlbShootdowns, TracePhase::Counter,
                             static_cast<uint64_t>(stats_.interrupts.tlb_shootdowns));
        }
    }

    std::thread StartGcThread() {
        auto run_gc = [this]() {
            GcThread(ctx_, gc_, from_, stats_).Run();
            gc_done_.store(true, std::memory_order_release);
        };
        if (cfg_.stall_seconds > 0) {  // test hook: mutators start once the GC holds its stalled page
            std::thread gc_thread(run_gc);
            while (!ctx_.gc_stalled.load(std::memory_order_acquire) && !gc_done_.load(std::memory_order_acquire))
                sched_yield();
            ctx_.start_mutators.store(true, std::memory_order_release);
            return gc_thread;
        }
        // Mutators resume right after the pause, as app threads do; the GC thread starts once each has made its
        // first access, so that every mutator really runs concurrently with the compaction (bounded wait).
        ctx_.start_mutators.store(true, std::memory_order_release);
        const uint64_t deadline = now_ns() + static_cast<uint64_t>(cfg_.watchdog_seconds * 1e9);
        while (ctx_.mutators_ready.load(std::memory_order_acquire) < cfg_.mutators && now_ns() < deadline &&
               !ctx_.abort.load(std::memory_order_acquire))
            sched_yield();
        return std::thread(run_gc);
    }

    void RunWatchdogUntilGcDone() {
        uint64_t last_progress = 0, last_change = now_ns();
        const uint64_t watchdog_ns = static_cast<uint64_t>(cfg_.watchdog_seconds * 1e9);
        while (!gc_done_.load(std::memory_order_acquire)) {
            timespec ts{0, 10000000};
            nanosleep(&ts, nullptr);
            const uint64_t pr = ctx_.progress.load(std::memory_order_relaxed);
            const uint64_t now = now_ns();
            if (pr != last_progress) {
                last_progress = pr;
                last_change = now;
            } else if (now - last_change > watchdog_ns && !ctx_.abort.load()) {
                char why[160];
                snprintf(why, sizeof why, "watchdog: no page made progress for %.1f s (%llu of %llu pages installed)",
                         cfg_.watchdog_seconds, static_cast<unsigned long long>(pr),
                         static_cast<unsigned long long>(plan_.num_to_pages));
                request_abort(ctx_, ETIMEDOUT, why);
            }
        }
    }

    // Stop mutators, drain handlers, unregister. Unregistering wakes blocked faulters, and later accesses no
    // longer fault: it must come before joining the mutators whenever nobody else would resolve their faults —
    // after an abort, and in fault-thread mode once the fault thread is gone. SIGBUS handlers resolve their own
    // faults until the mutators are joined.
    void FinishPhase() {
        trace_.record(TraceKind::Finish, TracePhase::Begin);
        ctx_.stop_mutators.store(true, std::memory_order_release);
        if (fault_thread_.joinable()) fault_thread_.join();
        if (mode_ == FaultMode::Thread) {
            // Nobody resolves faults any more: close the userfaultfd, which releases every fault still queued
            // (the kernel marks the context released before it wakes them, so none can sleep again). Unregistering
            // alone is not enough: a fault retried between the unregister's wake and the clearing of the VMA's
            // flags sleeps again with nobody to wake it (seen: a mutator allocating a fresh page as the phase ended).
            CloseUserfaultfd();
        } else if (ctx_.abort.load()) {
            UnregisterHeap();  // SIGBUS handlers may still be inside an ioctl on the descriptor: keep it open
        }
        StopMutators();
        signals_.stop();
        stats_.signals_sent = signals_.sent();
        while (ctx_.handlers_in_flight.load(std::memory_order_acquire) > 0) sched_yield();
        if (handler_installed_) {
            sigaction(SIGBUS, &g_prev_sigbus, nullptr);
            g_active.store(nullptr, std::memory_order_release);
        }
        CloseUserfaultfd();
        stats_.finish_s = static_cast<double>(now_ns() - t_gc_end_) * 1e-9;
        trace_.record(TraceKind::Finish, TracePhase::End);
        const rusage self1 = usage_of(RUSAGE_SELF);
        stats_.minor_faults = static_cast<uint64_t>(self1.ru_minflt - self0_.ru_minflt);
        stats_.major_faults = static_cast<uint64_t>(self1.ru_majflt - self0_.ru_majflt);
    }

    void MergeCounters() {
        stats_.pages_zeropage += ctx_.orphan_zeropages.load();
        stats_.add(gc_.counters);
        for (auto& t : thread_ctxs_) {
            stats_.add(t.counters);
            stats_.latency_samples_ns.insert(stats_.latency_samples_ns.end(), t.samples.begin(), t.samples.end());
            stats_.writes.insert(stats_.writes.end(), t.writes.begin(), t.writes.end());
        }
        for (unsigned i = 0; i < cfg_.mutators; ++i) stats_.new_object_offsets.push_back(std::move(thread_ctxs_[i].new_objects));
        if (cfg_.trace_events) CollectTrace();
    }

    // Each thread's events, named (the threads have ended).
    void CollectTrace() {
        stats_.traced = true;
        auto add = [this](std::string name, TraceBuffer& b) {
            const uint64_t dropped = b.dropped();
            stats_.trace.push_back(ThreadTrace{std::move(name), b.take(), dropped});
        };
        add("collector", trace_);
        add("GC thread", gc_.trace);
        for (unsigned i = 0; i < cfg_.mutators; ++i) add("mutator " + std::to_string(i), thread_ctxs_[i].trace);
        if (mode_ == FaultMode::Thread) add("fault thread", thread_ctxs_[cfg_.mutators].trace);
    }

    void ThrowIfAborted() const {
        if (!ctx_.abort.load()) return;
        const int err = ctx_.abort_err.load();
        if (err == ETIMEDOUT) throw WatchdogTimeout(ctx_.abort_reason);
        if (err == EEXIST || err == EBADMSG) throw HeapCorruption(std::string("concurrent compaction aborted: ") + ctx_.abort_reason);
        throw UffdError(err > 0 ? err : EIO, "COMPACTION", 0, std::string("concurrent compaction aborted: ") + ctx_.abort_reason);
    }

    // /proc/self/pagemap, opened before the pause and closed when the collection ends, also on errors.
    struct PagemapFd {
        int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        ~PagemapFd() {
            if (fd >= 0) ::close(fd);
        }
    };

    HeapSpace& space_;
    const PlanView& plan_;
    const CollectorConfig& cfg_;
    const FaultMode mode_;
    const uint64_t ps_;
    const uint64_t max_run_pages_;
    const unsigned nthreads_;  // thread_ctxs_: mutators + (fault thread | unused)
    Context ctx_;
    PagemapFd pagemap_;
    Mapping gc_buffer_, gc_fresh_, buffers_, fresh_;
    ThreadCtx gc_;
    std::vector<ThreadCtx> thread_ctxs_;
    TraceBuffer trace_;  // the collection's own thread: pause, phase, finish, the phase's TLB shootdowns
    std::vector<std::thread> mutators_;
    std::unique_ptr<std::atomic<int>[]> mutator_tids_{new std::atomic<int>[kMaxMutators]()};
    AppSignals signals_{ctx_};
    CollectionStats stats_;
    rusage self0_{};
    Mapping from_;
    std::unique_ptr<Userfaultfd> uffd_;
    bool handler_installed_ = false;
    std::thread fault_thread_;
    std::atomic<bool> gc_done_{false};
    uint64_t t_pause_ = 0, t_concurrent_ = 0, t_gc_end_ = 0;
    InterruptDelta irq0_;
    int64_t swin0_ = -1, swout0_ = -1;
};

}  // namespace

CollectionStats run_concurrent(HeapSpace& space, const PlanView& plan, const CollectorConfig& cfg, Strategy strategy,
                               FaultMode mode) {
    std::lock_guard<std::mutex> lock(g_collection_lock);
    return ConcurrentCollection(space, plan, cfg, strategy, mode).Run();
}

}  // namespace compactor::detail
