// Claiming, compacting and installing pages: the code every thread of a concurrent compaction runs, the GC
// thread for its batches and mutators (inside SIGBUS handlers) or the fault thread for single pages.
// Async-signal-safe throughout: atomics, memcpy, ioctl, sched_yield, nanosleep, clock_gettime.
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sched.h>

#include "compaction_context.hpp"
#include "compactor/page_compaction.hpp"

namespace compactor::detail {

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

static void backoff(unsigned& spins) {
    if (spins < 16) {
        sched_yield();
    } else {
        const unsigned shift = spins - 16 < 10 ? spins - 16 : 10;
        timespec ts{0, static_cast<long>(1000L << shift)};  // 1 us .. ~1 ms
        nanosleep(&ts, nullptr);
    }
    ++spins;
}

void record_latency(ThreadCtx& tc, uint64_t ns, uint64_t max_samples) {
    int b = ns ? 63 - __builtin_clzll(ns) : 0;
    if (b >= kLatencyBuckets) b = kLatencyBuckets - 1;
    tc.counters.latency_histogram[static_cast<size_t>(b)] += 1;
    if (tc.samples.size() < tc.samples.capacity() && tc.samples.size() < max_samples) tc.samples.push_back(ns);
}

namespace {

enum class CopyReason { Copy, PoolEmpty, Ebusy, Error };

void count_pages(ThreadCtx& tc, bool move, bool dense, CopyReason why, uint64_t pages, uint64_t call_pages) {
    CollectionStats& c = tc.counters;
    if (move) {
        if (dense) c.pages_dense_move += pages;
        else if (call_pages > 1) c.pages_move_batched += pages;
        else c.pages_move += pages;
        return;
    }
    switch (why) {
        case CopyReason::Copy: c.pages_copy += pages; break;
        case CopyReason::PoolEmpty: c.pages_copy_fallback_pool += pages; break;
        case CopyReason::Ebusy: c.pages_copy_fallback_ebusy += pages; break;
        case CopyReason::Error: c.pages_copy_fallback_error += pages; break;
    }
}

bool install(Context& ctx, ThreadCtx& tc, uint64_t first_page, uint8_t* src, uint64_t npages, bool move, bool dense,
             CopyReason why) {
    CollectionStats& c = tc.counters;
    const uint64_t ps = ctx.ps;
    uint64_t done = 0;
    unsigned enomem = 0;
    while (done < npages) {
        if (ctx.abort.load(std::memory_order_relaxed)) return false;
        const uint64_t dst = reinterpret_cast<uint64_t>(ctx.to_space) + (first_page + done) * ps;
        const uint64_t s = reinterpret_cast<uint64_t>(src) + done * ps;
        const uint64_t len = (npages - done) * ps;
        const uint64_t t0 = tc.is_gc ? now_ns() : 0;
        IoResult r;
        // Test hook. EBUSY is injected into MOVE only: the kernel never answers COPY with it.
        const bool inject_here = ctx.cfg.inject.fraction > 0 && (move || ctx.cfg.inject.err != EBUSY);
        if (inject_here && tc.rng.uniform() < ctx.cfg.inject.fraction) {
            r = {0, ctx.cfg.inject.err};
            c.injected += 1;
        } else {
            r = move ? ctx.uffd->move(dst, s, len, 0) : ctx.uffd->copy(dst, s, len, 0);
        }
        if (tc.is_gc) c.gc_install_ns += now_ns() - t0;
        (move ? c.ioctl_move : c.ioctl_copy) += 1;
        const uint64_t ok_pages = static_cast<uint64_t>(r.done) / ps;
        (move ? c.bytes_moved : c.bytes_copied) += ok_pages * ps;
        count_pages(tc, move, dense, why, ok_pages, npages - done);
        done += ok_pages;
        if (r.err == 0) continue;
        switch (r.err) {
            case EAGAIN:
                c.eagain += 1;
                sched_yield();
                break;
            case EEXIST:  // already installed (a race the state machine resolves as "done")
                c.eexist += 1;
                done += 1;
                break;
            case EBUSY:  // source page not exclusive: fall back to COPY from the same source
                c.ebusy += 1;
                if (!move) {
                    request_abort(ctx, EBUSY, "UFFDIO_COPY failed with EBUSY");
                    return false;
                }
                move = false;
                why = CopyReason::Ebusy;
                break;
            case ENOMEM:
                c.enomem += 1;
                if (++enomem > 64) {
                    request_abort(ctx, ENOMEM, move ? "UFFDIO_MOVE kept failing with ENOMEM" : "UFFDIO_COPY kept failing with ENOMEM");
                    return false;
                } else {
                    timespec ts{0, 200000};
                    nanosleep(&ts, nullptr);
                }
                break;
            case ENOENT:
                c.enoent += 1;
                request_abort(ctx, ENOENT, move ? "UFFDIO_MOVE found a hole in its source (ENOENT)" : "UFFDIO_COPY failed with ENOENT");
                return false;
            default:
                request_abort(ctx, r.err, move ? "UFFDIO_MOVE failed" : "UFFDIO_COPY failed");
                return false;
        }
    }
    return true;
}

// A claimed page (kMutatorProcessing) compacted and installed by a mutator or the fault thread.
bool resolve_claimed(Context& ctx, ThreadCtx& tc, uint64_t page) {
    const PlanView& p = ctx.plan;
    if (page >= p.num_to_pages) {  // no live data: the zero page
        const uint64_t dst = reinterpret_cast<uint64_t>(ctx.to_space) + page * ctx.ps;
        IoResult r = ctx.uffd->zeropage(dst, ctx.ps, 0);
        tc.counters.ioctl_zeropage += 1;
        if (r.err == 0) tc.counters.pages_zeropage += 1;
        else if (r.err == EEXIST) tc.counters.eexist += 1;
        else if (r.err != ENOENT) {
            request_abort(ctx, r.err, "UFFDIO_ZEROPAGE failed");
            return false;
        }
        return true;
    }
    if (page_kind(p, page) == PageKind::Dense) {
        uint8_t* in_place = ctx.from_space + page * ctx.ps;
        compact_page(p, ctx.from_space, in_place, page);
        return install(ctx, tc, page, in_place, 1, ctx.strategy != Strategy::Copy, true, CopyReason::Copy);
    }
    switch (ctx.strategy) {
        case Strategy::Move: {
            uint8_t* target = nullptr;
            if (recycle_pages(ctx, 1, &target) == 1) {
                compact_page(p, ctx.from_space, target, page);
                return install(ctx, tc, page, target, 1, true, false, CopyReason::Copy);
            }
            compact_page(p, ctx.from_space, tc.buffer, page);
            return install(ctx, tc, page, tc.buffer, 1, false, false, CopyReason::PoolEmpty);
        }
        case Strategy::MoveAlloc:
            compact_page(p, ctx.from_space, tc.fresh, page);
            return install(ctx, tc, page, tc.fresh, 1, true, false, CopyReason::Copy);
        default:
            compact_page(p, ctx.from_space, tc.buffer, page);
            return install(ctx, tc, page, tc.buffer, 1, false, false, CopyReason::Copy);
    }
}

}  // namespace

bool install_pages(Context& ctx, ThreadCtx& tc, uint64_t first_page, uint8_t* src, uint64_t npages, bool move,
                   bool dense) {
    return install(ctx, tc, first_page, src, npages, move, dense, CopyReason::Copy);
}

bool install_pages_pool_empty(Context& ctx, ThreadCtx& tc, uint64_t first_page, uint8_t* src, uint64_t npages) {
    return install(ctx, tc, first_page, src, npages, false, false, CopyReason::PoolEmpty);
}

bool resolve_fault(Context& ctx, ThreadCtx* tc, uint64_t page) {
    if (page >= ctx.num_pages) return false;
    std::atomic<uint8_t>& st = ctx.state[page];
    uint8_t s = kUnprocessed;
    const bool can_compact = tc != nullptr || page >= ctx.plan.num_to_pages;
    if (can_compact && st.load(std::memory_order_acquire) == kUnprocessed &&
        st.compare_exchange_strong(s, kMutatorProcessing, std::memory_order_acq_rel)) {
        bool ok;
        if (tc) {
            ok = resolve_claimed(ctx, *tc, page);
            if (ok) tc->counters.pages_by_mutators += 1;
        } else {
            ThreadCtx scratch;  // a zero page faulted by a thread without a context: its counters are dropped
            ok = resolve_claimed(ctx, scratch, page);
        }
        if (ok) {
            st.store(kProcessedAndMapped, std::memory_order_release);
            ctx.progress.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
    }
    unsigned spins = 0;
    while (st.load(std::memory_order_acquire) != kProcessedAndMapped) {
        if (ctx.unregistered.load(std::memory_order_acquire)) return false;
        backoff(spins);
    }
    return false;
}

}  // namespace compactor::detail
