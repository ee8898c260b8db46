// Claiming, compacting and installing pages: the code every thread of a concurrent compaction runs, the GC
// thread for its batches and mutators (inside SIGBUS handlers) or the fault thread for single pages.
// Async-signal-safe throughout: atomics, memcpy, ioctl, futex, sched_yield, nanosleep, clock_gettime.
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compaction_context.hpp"
#include "compactor/page_compaction.hpp"

namespace compactor::detail {

namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "the futex word is the atomic's storage");

uint32_t* futex_word(std::atomic<uint32_t>& a) { return reinterpret_cast<uint32_t*>(&a); }

// Builds an abort reason from pieces without snprintf (async-signal-safe).
class Reason {
public:
    Reason& text(const char* t) {
        while (*t && k_ + 1 < sizeof buf_) buf_[k_++] = *t++;
        buf_[k_] = 0;
        return *this;
    }
    Reason& number(uint64_t n) {
        char d[24];
        int i = 0;
        do d[i++] = static_cast<char>('0' + n % 10); while (n /= 10);
        while (i > 0 && k_ + 1 < sizeof buf_) buf_[k_++] = d[--i];
        buf_[k_] = 0;
        return *this;
    }
    const char* c_str() const { return buf_; }

private:
    char buf_[240] = {0};
    size_t k_ = 0;
};

}  // namespace

void request_abort(Context& ctx, int err, const char* why) {
    int expected = 0;
    if (ctx.abort_err.compare_exchange_strong(expected, err ? err : -1)) {
        size_t n = 0;
        while (why[n] && n + 1 < sizeof ctx.abort_reason) {
            ctx.abort_reason[n] = why[n];
            ++n;
        }
        ctx.abort_reason[n] = 0;
    }
    ctx.abort.store(true, std::memory_order_release);
}

void Context::pages_mapped() {
    if (cfg.backoff != Backoff::Futex) return;
    install_epoch.fetch_add(1, std::memory_order_release);
    if (futex_waiters.load(std::memory_order_acquire))
        syscall(SYS_futex, futex_word(install_epoch), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

uint64_t recycle_pages(Context& ctx, uint64_t want, uint8_t** start) {
    uint64_t cur = ctx.recycle_cursor.load(std::memory_order_acquire);
    for (;;) {
        const uint64_t floor = ctx.recycle_floor();
        if (cur <= floor) return 0;
        uint64_t avail = (cur - floor) / ctx.ps;
        if (avail == 0) return 0;
        const uint64_t n = avail < want ? avail : want;
        const uint64_t next = cur - n * ctx.ps;
        if (ctx.recycle_cursor.compare_exchange_weak(cur, next, std::memory_order_acq_rel)) {
            *start = ctx.from_space + next;
            return n;
        }
    }
}

void wait_until_mapped(Context& ctx, ThreadCtx* tc, uint64_t page) {
    // Futex waits are counted once the window below has closed (destroyed before this): a nested handler that
    // runs inside the window counts its own, and the two increments cannot interleave.
    struct CountWhenClosed {
        ThreadCtx* tc;
        uint64_t n = 0;
        ~CountWhenClosed() {
            if (tc) tc->counters.futex_waits += n;
        }
    } futex_waits{tc};
    SignalWindow window(tc);  // opened before the first blocking wait: short waits keep signals deferred
    for (uint32_t i = 1;; ++i) {
        const uint32_t epoch = ctx.install_epoch.load(std::memory_order_acquire);
        if (ctx.page_states->is_mapped(page)) return;
        if (ctx.unregistered.load(std::memory_order_acquire) || ctx.abort.load(std::memory_order_acquire)) return;
        if (ctx.cfg.backoff == Backoff::Futex) {
            // Sleeps while no installation happened since `epoch` was read (1 ms cap: abort paths do not wake).
            window.open();
            ctx.futex_waiters.fetch_add(1, std::memory_order_acq_rel);
            timespec ts{0, 1000000};
            syscall(SYS_futex, futex_word(ctx.install_epoch), FUTEX_WAIT_PRIVATE, epoch, &ts, nullptr, 0);
            ctx.futex_waiters.fetch_sub(1, std::memory_order_acq_rel);
            futex_waits.n += 1;
        } else if (i <= 5) {  // ART's BackOff(i): kYieldMax = 5, then kMinSleepNs * (i - kYieldMax)
            sched_yield();
        } else {
            window.open();
            const uint64_t ns = 10000ull * (i - 5);
            timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
            nanosleep(&ts, nullptr);
        }
    }
}

void record_latency(ThreadCtx& tc, uint64_t ns, uint64_t max_samples) {
    tc.counters.fault_ns += ns;
    int b = ns ? 63 - __builtin_clzll(ns) : 0;
    if (b >= kLatencyBuckets) b = kLatencyBuckets - 1;
    tc.counters.latency_histogram[static_cast<size_t>(b)] += 1;
    if (tc.samples.size() < tc.samples.capacity() && tc.samples.size() < max_samples) tc.samples.push_back(ns);
}

namespace {

void count_pages(Counters& c, bool move, bool dense, InstallReason why, uint64_t pages, uint64_t call_pages) {
    if (why == InstallReason::FreshPage) {
        (move ? c.pages_fresh_zero_and_move : c.pages_fresh_copy) += pages;
        return;
    }
    if (dense && !move) c.pages_dense_copy += pages;  // also counted by its reason below
    if (move) {
        if (dense) c.pages_dense_move += pages;
        else if (call_pages > 1) c.pages_move_batched += pages;
        else c.pages_move += pages;
        return;
    }
    switch (why) {
        case InstallReason::Compacted: c.pages_copy += pages; break;
        case InstallReason::FreshPage: break;  // counted above
        case InstallReason::PoolEmpty: c.pages_copy_fallback_pool += pages; break;
        case InstallReason::Ebusy: c.pages_copy_fallback_ebusy += pages; break;
        case InstallReason::ShortRun: c.pages_copy_short_run += pages; break;
    }
}

// Whether a MOVE that answered EEXIST at `dst` did move its page there: the source is now empty (no PTE, no swap
// entry) and the destination holds a page. The kernel does this now and then when MOVE races reclaim on swapped
// pages (tests/test_uffd_swap.py); a real double install leaves the source page where it was.
bool moved_despite_eexist(const Context& ctx, uint64_t dst, uint64_t src) {
    uint64_t s = 0, d = 0;
    if (!read_pagemap(ctx.pagemap_fd, src, ctx.ps, &s, 1) || !read_pagemap(ctx.pagemap_fd, dst, ctx.ps, &d, 1)) return false;
    const uint64_t populated = kPagemapPresent | kPagemapSwapped;
    return !(s & populated) && (d & populated);
}

// The test hooks that make the kernel itself answer wrongly (inject_errno kDoubleInstall, kPoison): once, in the GC thread's first
// installation (for a double install, its first of several pages by the strategy's method). Returns true when the pages were "installed" by the hook (kPoison).
bool kernel_injection(Context& ctx, ThreadCtx& tc, uint64_t dst, uint64_t len, bool move) {
    const int what = ctx.cfg.inject_errno;
    if (!tc.is_gc || (what != kDoubleInstall && what != kPoison) || tc.counters.injected) return false;
    // A double install waits for a run of several pages (below) installed by the strategy's own method.
    if (what == kDoubleInstall && (len < 2 * ctx.ps || move != (ctx.strategy != Strategy::Copy))) return false;
    tc.counters.injected += 1;
    if (what == kDoubleInstall) {
        // The last page of the range: a MOVE or COPY of several pages installs the others first, so the EEXIST
        // comes after partial progress and must be judged at the page that failed, not at the range's start.
        ctx.uffd->zeropage(dst + len - ctx.ps, ctx.ps, UFFDIO_ZEROPAGE_MODE_DONTWAKE);
        return false;
    }
    ctx.uffd->poison(dst, len, 0);
    return true;
}

}  // namespace

namespace {

// One install_pages call: a run of compacted pages on its way into the to-space, ioctl by ioctl.
struct PendingInstall {
    uint64_t first_page;  // to-space page of src's first page
    uint8_t* src;
    uint64_t npages;
    bool move;            // MOVE, else COPY (an EBUSY turns a MOVE into a COPY)
    bool dense;           // selects counters only
    InstallReason why;       // selects counters only
    uint64_t done = 0;    // pages installed so far
    unsigned enomem_retries = 0;
};

// What the caller does after one ioctl's result was interpreted.
enum class Next { Continue, Abort };

// Test hook (inject_errno, inject_fraction): the error to pretend the kernel answered this ioctl with, or 0. EBUSY is injected
// into MOVE only: the kernel never answers COPY with it.
int injected_error(Context& ctx, ThreadCtx& tc, bool move) {
    const int inj = ctx.cfg.inject_errno;
    const bool inject_here = ctx.cfg.inject_fraction > 0 && inj > 0 && (move || inj != EBUSY);
    if (!inject_here || tc.rng.uniform() >= ctx.cfg.inject_fraction) return 0;
    tc.counters.injected += 1;
    return inj;
}

// Issues one UFFDIO_MOVE or UFFDIO_COPY for the pages of `in` not installed yet (or its injected failure), timed
// for the GC thread, and counts the ioctl and the pages it installed.
IoResult issue_install_ioctl(Context& ctx, ThreadCtx& tc, PendingInstall& in, uint64_t dst, uint64_t src) {
    Counters& c = tc.counters;
    const uint64_t len = (in.npages - in.done) * ctx.ps;
    const TraceMethod method = in.move ? TraceMethod::Move : TraceMethod::Copy;
    tc.trace.record(TraceKind::Install, TracePhase::Begin, in.first_page + in.done, in.npages - in.done, method);
    const uint64_t t0 = tc.is_gc ? now_ns() : 0;
    IoResult r;
    if (const int inj = injected_error(ctx, tc, in.move)) r = {0, inj};
    else r = in.move ? ctx.uffd->move(dst, src, len, 0) : ctx.uffd->copy(dst, src, len, 0);
    if (tc.is_gc) c.gc_install_ns += now_ns() - t0;
    (in.move ? c.ioctl_move : c.ioctl_copy) += 1;
    const uint64_t ok_pages = static_cast<uint64_t>(r.done) / ctx.ps;
    tc.trace.record(TraceKind::Install, TracePhase::End, in.first_page + in.done, ok_pages, method, r.err);
    (in.move ? c.bytes_moved : c.bytes_copied) += ok_pages * ctx.ps;
    count_pages(c, in.move, in.dense, in.why, ok_pages, in.npages - in.done);
    in.done += ok_pages;
    return r;
}


const char* reason_name(InstallReason why) {
    switch (why) {
        case InstallReason::Compacted: return "compacted";
        case InstallReason::PoolEmpty: return "recycle pool empty";
        case InstallReason::Ebusy: return "after EBUSY";
        case InstallReason::ShortRun: return "short run";
        case InstallReason::FreshPage: return "fresh page";
    }
    return "?";
}

// EEXIST on a page this thread claimed: a double install. The reason names the page, the ioctl, who issued it
// (GC thread or mutator), the run and why it was installed so, and what /proc/self/pagemap says the page holds.
Next abort_on_double_install(Context& ctx, ThreadCtx& tc, const PendingInstall& in) {
    tc.counters.eexist += 1;
    const uint64_t page = in.first_page + in.done;
    uint64_t entry = 0;
    const bool read = read_pagemap(ctx.pagemap_fd, reinterpret_cast<uint64_t>(ctx.to_space) + page * ctx.ps, ctx.ps,
                                   &entry, 1);
    Reason r;
    r.text("double install: to-space page ").number(page).text(" was already mapped when this thread's ")
        .text(in.move ? "UFFDIO_MOVE" : "UFFDIO_COPY").text(" reached it (EEXIST; ").text(tc.is_gc ? "GC thread" : "mutator")
        .text(", run of ").number(in.npages).text(" pages from ").number(in.first_page).text(", ")
        .number(in.done).text(" done, ").text(reason_name(in.why)).text("; pagemap ")
        .text(!read ? "unreadable" : (entry & kPagemapPresent) ? "present" : (entry & kPagemapSwapped) ? "swapped" : "none")
        .text(", mapped per page state ").text(ctx.page_states->is_mapped(page) ? "yes" : "no").text(")");
    request_abort(ctx, EEXIST, r.c_str());
    return Next::Abort;
}

// The errno policy: EAGAIN retries, EEXIST is a double install (unless the MOVE did move its page), EBUSY turns
// a MOVE into a COPY, ENOMEM retries a bounded number of times; anything else aborts the run.
Next interpret_install_error(Context& ctx, ThreadCtx& tc, PendingInstall& in, int err, uint64_t dst, uint64_t src) {
    Counters& c = tc.counters;
    switch (err) {
        case EAGAIN:
            c.eagain += 1;
            sched_yield();
            return Next::Continue;
        case EEXIST:  // this thread claimed the page: someone else mapped it too, unless the MOVE moved it
            if (!in.move || !moved_despite_eexist(ctx, dst, src)) return abort_on_double_install(ctx, tc, in);
            c.eexist_moved += 1;
            count_pages(c, in.move, in.dense, in.why, 1, in.npages - in.done);
            c.bytes_moved += ctx.ps;
            in.done += 1;
            return Next::Continue;
        case EBUSY:  // source page not exclusive: fall back to COPY from the same source
            c.ebusy += 1;
            if (!in.move) break;
            in.move = false;
            in.why = InstallReason::Ebusy;
            return Next::Continue;
        case ENOMEM:
            c.enomem += 1;
            if (++in.enomem_retries > 64) {
                request_abort(ctx, ENOMEM, in.move ? "UFFDIO_MOVE kept failing with ENOMEM" : "UFFDIO_COPY kept failing with ENOMEM");
                return Next::Abort;
            } else {
                timespec ts{0, 200000};
                nanosleep(&ts, nullptr);
            }
            return Next::Continue;
        case ENOENT:
            c.enoent += 1;
            request_abort(ctx, ENOENT, in.move ? "UFFDIO_MOVE found a hole in its source (ENOENT)" : "UFFDIO_COPY failed with ENOENT");
            return Next::Abort;
        default: break;
    }
    if (err == EBUSY) request_abort(ctx, EBUSY, "UFFDIO_COPY failed with EBUSY");
    else request_abort(ctx, err, in.move ? "UFFDIO_MOVE failed" : "UFFDIO_COPY failed");
    return Next::Abort;
}

}  // namespace

bool install_pages(Context& ctx, ThreadCtx& tc, uint64_t first_page, uint8_t* src, uint64_t npages, bool move,
                   bool dense, InstallReason why) {
    const uint64_t to_space = reinterpret_cast<uint64_t>(ctx.to_space);
    if (kernel_injection(ctx, tc, to_space + first_page * ctx.ps, npages * ctx.ps, move)) return true;
    PendingInstall in{first_page, src, npages, move, dense, why};
    while (in.done < in.npages) {
        if (ctx.abort.load(std::memory_order_relaxed)) return false;
        const uint64_t dst = to_space + (in.first_page + in.done) * ctx.ps;
        const uint64_t s = reinterpret_cast<uint64_t>(in.src) + in.done * ctx.ps;
        const IoResult r = issue_install_ioctl(ctx, tc, in, dst, s);
        if (r.err == 0) continue;
        // The ioctl installed in.done - (pages before it) pages and failed at the next one: judge that page.
        const uint64_t failed_dst = to_space + (in.first_page + in.done) * ctx.ps;
        const uint64_t failed_src = reinterpret_cast<uint64_t>(in.src) + in.done * ctx.ps;
        if (interpret_install_error(ctx, tc, in, r.err, failed_dst, failed_src) == Next::Abort) return false;
    }
    return true;
}

namespace {

// A page with no live data, claimed by any thread: the zero page. `tc` may be null (a thread without context).
bool install_zeropage(Context& ctx, ThreadCtx* tc, uint64_t page) {
    Counters* c = tc ? &tc->counters : nullptr;
    const uint64_t dst = reinterpret_cast<uint64_t>(ctx.to_space) + page * ctx.ps;
    if (tc) tc->trace.record(TraceKind::Install, TracePhase::Begin, page, 1, TraceMethod::Zeropage);
    IoResult r = ctx.uffd->zeropage(dst, ctx.ps, 0);
    if (tc) tc->trace.record(TraceKind::Install, TracePhase::End, page, r.err == 0 ? 1 : 0, TraceMethod::Zeropage, r.err);
    if (c) c->ioctl_zeropage += 1;
    if (r.err == 0) {
        if (c) c->pages_zeropage += 1;
        else ctx.orphan_zeropages.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    Reason why;
    why.text(r.err == EEXIST ? "double install: to-space page " : "UFFDIO_ZEROPAGE of to-space page ").number(page)
        .text(r.err == EEXIST ? " was already mapped when its zero page was installed (EEXIST)" : " failed");
    request_abort(ctx, r.err, why.c_str());
    return false;
}

// A fresh page above the post-compact end (claimed), first touched by an allocating mutator (or an access after
// the phase): ART 16's ZeroAndMoveFreePage for the MOVE family — a recycled from-space page (move-alloc: a freshly
// allocated one) zeroed and MOVEd — and UFFDIO_ZEROPAGE for the COPY family and when the recycle pool is empty.
bool install_fresh_page(Context& ctx, ThreadCtx* tc, uint64_t page) {
    if (tc && install_page_with_move(ctx)) {
        if (ctx.strategy == Strategy::MoveAlloc) {
            std::memset(tc->fresh, 0, ctx.ps);
            return install_pages(ctx, *tc, page, tc->fresh, 1, true, false, InstallReason::FreshPage);
        }
        ctx.fresh_pool_users.fetch_add(1, std::memory_order_seq_cst);
        uint8_t* src = nullptr;
        const bool got = !ctx.recycle_pool_closed.load(std::memory_order_seq_cst) && recycle_pages(ctx, 1, &src) == 1;
        bool ok = false;
        if (got) {
            std::memset(src, 0, ctx.ps);
            ok = install_pages(ctx, *tc, page, src, 1, true, false, InstallReason::FreshPage);
        }
        ctx.fresh_pool_users.fetch_sub(1, std::memory_order_seq_cst);
        if (got) return ok;
    }
    return install_zeropage(ctx, tc, page);
}

// One page compacted by a mutator or the fault thread, as a "compact" slice of its trace.
void compact_traced(ThreadCtx& tc, const PlanView& p, const uint8_t* from_space, uint8_t* target, uint64_t page) {
    TraceSlice slice(&tc, TraceKind::Compact, page, 1);
    slice.set_end_args(page, 1);
    compact_page(p, from_space, target, page);
}

// A claimed page (PageState::kMutatorProcessing) compacted and installed by a mutator or the fault thread: one page, so
// the policy decides MOVE or COPY for a single-page run not installed by the GC thread.
bool resolve_claimed(Context& ctx, ThreadCtx& tc, uint64_t page) {
    const PlanView& p = ctx.plan;
    const bool move = install_page_with_move(ctx);
    if (page_kind(p, page) == PageKind::Dense) {
        uint8_t* in_place = ctx.from_space + page * ctx.ps;
        compact_traced(tc, p, ctx.from_space, in_place, page);
        return install_pages(ctx, tc, page, in_place, 1, move, true, InstallReason::Compacted);
    }
    if (!move) {
        compact_traced(tc, p, ctx.from_space, tc.buffer, page);
        return install_pages(ctx, tc, page, tc.buffer, 1, false, false, InstallReason::Compacted);
    }
    if (ctx.strategy == Strategy::MoveAlloc) {
        compact_traced(tc, p, ctx.from_space, tc.fresh, page);
        return install_pages(ctx, tc, page, tc.fresh, 1, true, false, InstallReason::Compacted);
    }
    uint8_t* target = nullptr;
    if (recycle_pages(ctx, 1, &target) == 1) {
        compact_traced(tc, p, ctx.from_space, target, page);
        return install_pages(ctx, tc, page, target, 1, true, false, InstallReason::Compacted);
    }
    compact_traced(tc, p, ctx.from_space, tc.buffer, page);
    return install_pages(ctx, tc, page, tc.buffer, 1, false, false, InstallReason::PoolEmpty);
}

}  // namespace

bool resolve_fault(Context& ctx, ThreadCtx* tc, uint64_t page) {
    if (page >= ctx.num_pages) return false;
    const bool fresh = page >= ctx.plan.num_to_pages;  // above the post-compact end: no live data
    const bool can_resolve = tc != nullptr || fresh;
    if (can_resolve && ctx.page_states->try_claim_for_mutator(page)) {
        const uint64_t t0 = fresh && tc ? now_ns() : 0;
        bool ok;
        if (fresh) {
            TraceSlice slice(tc, TraceKind::FreshPage, page, 1);
            ok = install_fresh_page(ctx, tc, page);
        } else {
            ok = resolve_claimed(ctx, *tc, page);
        }
        if (t0) tc->counters.fresh_install_ns += now_ns() - t0;
        if (ok) {
            if (tc && !fresh) tc->counters.pages_by_mutators += 1;
            ctx.page_states->mark_mapped(page);
            ctx.progress.fetch_add(1, std::memory_order_relaxed);
            ctx.pages_mapped();
            return true;
        }
    }
    TraceSlice slice(tc, TraceKind::Wait, page, 1);
    wait_until_mapped(ctx, tc, page);
    return false;
}

}  // namespace compactor::detail
