#include "compactor/move_prices.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <sched.h>
#include <string>
#include <thread>
#include <vector>

#include "compactor/errors.hpp"
#include "compactor/mapping.hpp"
#include "compactor/uffd.hpp"
#include "compaction_context.hpp"  // pin_to
#include "measure_helpers.hpp"

namespace compactor {

namespace {

using detail::now_s;

constexpr unsigned kRepetitions = 7;      // interleaved; each price is a median over them
constexpr uint64_t kSingles = 16;         // 1-page ioctls per timed sample (one clock read per 16 ioctls)
constexpr uint64_t kRunsPerSample = 2;    // kRunPages-page ioctls per timed sample
constexpr double kMaxRun = 4503599627370496.0;  // 2^52 pages: past any address space
constexpr unsigned kAttempts = 3;         // measurements while another thread of the process is seen running
constexpr uint64_t kSettleMs = 30;        // and the wait between them
constexpr uint64_t kSleeps = 9;           // sleeps of the sleeping sibling probed (a median over them)
constexpr uint64_t kMovesPerSleep = 4;    // 1-page MOVEs timed one by one early in each sleep
constexpr uint64_t kSleepAttempts = 3 * kSleeps;  // sleeps tried (one the sibling woke during is not a sample)

void must(const IoResult& r, const char* what) { detail::must(r, "move prices", what); }

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

// A stretch of one anonymous mapping, aligned to a page-table span (a PMD: 2 MiB with 4 KiB pages) so that no run
// of kRunPages pages taken from it straddles two page tables (MOVE batches its flush per PMD). Pages are handed
// out front to back.
class Pool {
public:
    Pool(uint64_t pages, uint64_t ps) : ps_(ps), span_(ps * (ps / 8)), bytes_(pages * ps), map_(bytes_ + span_, true) {
        map_.hugepage(false);  // small pages: THP would move or copy 2 MiB at a time
        base_ = round_up(map_.address(), span_);
    }
    // The address of `pages` fresh pages; a run of more than one page starts at a multiple of kRunPages pages.
    uint64_t take(uint64_t pages) {
        if (pages > 1) next_ = round_up(next_, kRunPages * ps_);
        const uint64_t at = next_;
        next_ += pages * ps_;
        if (next_ > bytes_) throw std::logic_error("move prices: page pool too small");
        return base_ + at;
    }
    uint64_t base() const { return base_; }
    uint64_t bytes() const { return bytes_; }
    void dontfork() const { map_.dontfork(); }
    // Offset of `address` into the underlying mapping.
    size_t offset(uint64_t address) const { return static_cast<size_t>(address - map_.address()); }
    const Mapping& mapping() const { return map_; }

private:
    uint64_t ps_, span_, bytes_;
    Mapping map_;
    uint64_t base_ = 0, next_ = 0;
};

// Where one repetition installs its pages (first page of each sample).
struct RepetitionPlan {
    uint64_t copy_1_dst, copy_run_dst;
    uint64_t move_1_dst, move_1_src, move_run_dst, move_run_src;
    uint64_t move_1_sibling_dst, move_1_sibling_src;
};

// The TLB-shootdown interrupts CPU `cpu` has taken since boot; -1 where they are not counted (or cpu is -1).
int64_t tlb_shootdowns_on(int cpu) {
    if (cpu < 0) return -1;
    const detail::InterruptRows rows = detail::read_interrupt_rows();
    return rows.on(rows.tlb, cpu);
}

// shootdowns_after_sleep and its timed check: a sibling on `sibling_cpu` sleeps; early in each of its sleeps,
// kMovesPerSleep single-page MOVEs (from `src` into the registered `dst`, page after page) are timed one by one,
// and the TLB-shootdown interrupts its CPU took around them are counted (where /proc/interrupts counts them). A
// sleep during which it woke (a late timer, a loaded CPU) is not a sample.
void probe_sleeping_sibling(const Userfaultfd& uffd, int sibling_cpu, uint64_t dst, uint64_t src, uint64_t ps,
                            MovePrices& out) {
    std::vector<std::vector<double>> sleep_times;  // per sleep, each MOVE's ns
    std::vector<double> ipis_per_sleep;
    detail::SiblingThread sleeper(detail::SiblingThread::Kind::Sleeping, sibling_cpu);
    uint64_t next = 0;
    for (uint64_t attempt = 0; attempt < kSleepAttempts && sleep_times.size() < kSleeps; ++attempt) {
        // The counts are read outside the sleep (a read of /proc/interrupts can outlast it on a large machine; a
        // wake-up sends no TLB IPI).
        const int64_t irq0 = tlb_shootdowns_on(sibling_cpu);
        const uint64_t wakes = sleeper.wait_asleep();
        std::vector<double> times;
        for (uint64_t i = 0; i < kMovesPerSleep; ++i, ++next) {
            const double t0 = now_s();
            must(uffd.move(dst + next * ps, src + next * ps, ps, 0), "MOVE");
            times.push_back((now_s() - t0) * 1e9);
        }
        const bool woke = sleeper.woke_since(wakes);
        const int64_t irq1 = tlb_shootdowns_on(sibling_cpu);
        if (woke) continue;
        sleep_times.push_back(times);
        // At most one per MOVE (the row also counts other processes' shootdowns on that CPU).
        if (irq0 >= 0 && irq1 >= irq0)
            ipis_per_sleep.push_back(static_cast<double>(std::min<int64_t>(irq1 - irq0, kMovesPerSleep)));
    }
    if (sleep_times.empty()) return;
    // Read from the times: the last MOVE of a sleep is taken as free; one that took more than a fifth of the
    // difference between the first and the last over the last paid (an IPI that finds the idle CPU still polling,
    // not halted, costs far less than the first, which wakes it: 2-4 µs against 15 here). No difference worth a
    // MOVE of its own (arm64's broadcast TLBI): none paid.
    std::vector<double> first, last;
    for (const auto& t : sleep_times) {
        first.push_back(t.front());
        last.push_back(t.back());
    }
    const double free_ns = detail::median(last), extra = detail::median(first) - free_ns;
    std::vector<double> paid;
    for (const auto& t : sleep_times)
        paid.push_back(extra > free_ns ? static_cast<double>(std::count_if(
                                             t.begin(), t.end(), [&](double ns) { return ns > free_ns + 0.2 * extra; }))
                                       : 0.0);
    out.shootdowns_after_sleep_timed = detail::median(paid);
    // Counted where the kernel counts them (exact), else as timed.
    out.shootdowns_after_sleep =
        ipis_per_sleep.size() == sleep_times.size() ? detail::median(ipis_per_sleep) : out.shootdowns_after_sleep_timed;
}

// `disturbed`: the plain samples (no sibling of ours) sent the sibling's CPU shootdown IPIs, so another thread of
// the process ran there meanwhile and every price is off (only known where /proc/interrupts counts them).
MovePrices measure_pinned(int measurer_cpu, int sibling_cpu, bool* disturbed) {
    const uint64_t ps = page_size();
    const uint64_t run_len = kRunPages * ps;
    detail::pin_to(measurer_cpu);
    Userfaultfd uffd(UFFD_FEATURE_MOVE, true, true);

    // Destinations: fresh, registered, with their page tables already allocated (touch one page per page table,
    // then drop it), so that no sample pays a page-table allocation that the others do not.
    const uint64_t per_rep_slots = 3 * kRunPages + 2 * kRunsPerSample * kRunPages;  // generous: 3 single groups
    Pool dst(kRepetitions * per_rep_slots + kSleepAttempts * kMovesPerSleep, ps),
        src(per_rep_slots + kSleepAttempts * kMovesPerSleep, ps);
    // A fork elsewhere in the process must not make the pages to move shared (MOVE: EBUSY).
    src.dontfork();
    dst.dontfork();
    // COPY's source: one populated run, read again and again (COPY leaves it in place).
    Mapping copy_src(run_len);
    copy_src.hugepage(false);
    std::memset(copy_src.data(), 0x5a, run_len);

    // The pages to move are populated once and then recycled: each repetition moves the pages the one before
    // moved (present, exclusive, as the GC's from-space pages are) on into fresh destinations. First touch costs
    // more than all the ioctls measured, so it is paid for one repetition only.
    std::vector<RepetitionPlan> plans(kRepetitions);
    for (size_t r = 0; r < plans.size(); ++r) {
        RepetitionPlan& p = plans[r];
        p.copy_run_dst = dst.take(kRunsPerSample * kRunPages);
        p.move_run_dst = dst.take(kRunsPerSample * kRunPages);
        p.copy_1_dst = dst.take(kSingles);
        p.move_1_dst = dst.take(kSingles);
        p.move_1_sibling_dst = dst.take(kSingles);
        if (r == 0) {
            p.move_run_src = src.take(kRunsPerSample * kRunPages);
            p.move_1_src = src.take(kSingles);
            p.move_1_sibling_src = src.take(kSingles);
        } else {
            p.move_run_src = plans[r - 1].move_run_dst;
            p.move_1_src = plans[r - 1].move_1_dst;
            p.move_1_sibling_src = plans[r - 1].move_1_sibling_dst;
        }
    }
    const uint64_t span = ps * (ps / 8);
    for (uint64_t a = dst.base(); a < dst.base() + dst.bytes(); a += span) *reinterpret_cast<volatile uint8_t*>(a) = 1;
    dst.mapping().dontneed(dst.offset(dst.base()), dst.bytes());
    std::memset(reinterpret_cast<void*>(plans[0].move_run_src), 1, kRunsPerSample * run_len);
    std::memset(reinterpret_cast<void*>(plans[0].move_1_src), 1, kSingles * ps);
    std::memset(reinterpret_cast<void*>(plans[0].move_1_sibling_src), 1, kSingles * ps);
    const uint64_t sleep_pages = kSleepAttempts * kMovesPerSleep;
    const uint64_t sleep_dst = dst.take(sleep_pages), sleep_src = src.take(sleep_pages);
    std::memset(reinterpret_cast<void*>(sleep_src), 1, sleep_pages * ps);
    uint64_t range_ioctls = 0;
    must(uffd.register_range(dst.base(), dst.bytes(), UFFDIO_REGISTER_MODE_MISSING, &range_ioctls), "REGISTER");

    // ns per ioctl over `count` ioctls of `pages` pages each, the i-th into dst + i*len from src + i*src_step.
    auto ns_per_ioctl = [&](bool move, uint64_t to, uint64_t from, uint64_t src_step, uint64_t pages,
                            uint64_t count) {
        const uint64_t len = pages * ps;
        const double t0 = now_s();
        for (uint64_t i = 0; i < count; ++i) {
            if (move)
                must(uffd.move(to + i * len, from + i * src_step, len, 0), "MOVE");
            else
                must(uffd.copy(to + i * len, from + i * src_step, len, 0), "COPY");
        }
        return (now_s() - t0) * 1e9 / static_cast<double>(count);
    };
    const uint64_t copy_from = copy_src.address();
    std::vector<double> copy_1, copy_run, move_1, move_run, move_1_sibling;
    const int64_t quiet0 = tlb_shootdowns_on(sibling_cpu);
    for (const RepetitionPlan& p : plans) {
        copy_1.push_back(ns_per_ioctl(false, p.copy_1_dst, copy_from, ps, 1, kSingles));
        copy_run.push_back(ns_per_ioctl(false, p.copy_run_dst, copy_from, 0, kRunPages, kRunsPerSample));
        move_run.push_back(ns_per_ioctl(true, p.move_run_dst, p.move_run_src, run_len, kRunPages, kRunsPerSample));
        move_1.push_back(ns_per_ioctl(true, p.move_1_dst, p.move_1_src, ps, 1, kSingles));
    }
    const int64_t quiet1 = tlb_shootdowns_on(sibling_cpu);
    const int64_t plain_moves = static_cast<int64_t>(kRepetitions * (kSingles + kRunsPerSample));
    *disturbed = quiet0 >= 0 && quiet1 - quiet0 > plain_moves / 4;
    if (sibling_cpu >= 0) {
        // One sibling for all repetitions, after the plain samples (while it runs every MOVE pays the IPI): on a
        // loaded machine starting or stopping a thread can wait milliseconds for the other CPU, so that is paid once,
        // and each sample waits until the sibling is seen running.
        detail::SiblingThread sibling(detail::SiblingThread::Kind::Busy, sibling_cpu);
        for (const RepetitionPlan& p : plans) {
            sibling.wait_running();  // each sample starts with the sibling on its CPU, as a fresh thread would
            move_1_sibling.push_back(ns_per_ioctl(true, p.move_1_sibling_dst, p.move_1_sibling_src, ps, 1, kSingles));
        }
    }

    MovePrices out;
    if (sibling_cpu >= 0) probe_sleeping_sibling(uffd, sibling_cpu, sleep_dst, sleep_src, ps, out);
    const double span_pages = static_cast<double>(kRunPages - 1);
    const double c1 = detail::median(copy_1), cn = detail::median(copy_run);
    const double m1 = detail::median(move_1), mn = detail::median(move_run);
    // Noise can push a fitted price a little below 0 where the true one is small: a price is never negative.
    out.copy_ns_per_page = std::max(0.0, (cn - c1) / span_pages);
    out.copy_ns_per_ioctl = std::max(0.0, c1 - out.copy_ns_per_page);
    out.move_ns_per_page = std::max(0.0, (mn - m1) / span_pages);
    out.move_ns_per_ioctl = std::max(0.0, m1 - out.move_ns_per_page);
    out.shootdown_ns = sibling_cpu >= 0 ? std::max(0.0, detail::median(move_1_sibling) - m1) : 0.0;
    out.measured = true;
    return out;
}

}  // namespace

MovePrices measure_move_prices() {
    const double t0 = now_s();
    const ProbeResult pr = probe(true);  // throws UffdUnavailable when userfaultfd cannot be opened at all
    if (!(pr.features & UFFD_FEATURE_MOVE))
        throw UffdUnavailable(EOPNOTSUPP,
                              "move prices: this kernel lacks UFFD_FEATURE_MOVE (Linux >= 6.8 needed): UFFDIO_MOVE "
                              "cannot be priced here");
    // The measuring thread on the CPU this thread runs on, the sibling on another allowed one.
    const std::vector<int> cpus = detail::allowed_cpus();
    int measurer_cpu = -1, sibling_cpu = -1;
    if (cpus.size() >= 2) {
        const int here = sched_getcpu();
        measurer_cpu = cpus[0];
        for (int c : cpus)
            if (c == here) measurer_cpu = c;
        for (int c : cpus)
            if (c != measurer_cpu) {
                sibling_cpu = c;
                break;
            }
    }
    // A thread of its own, so that pinning it leaves the caller's affinity alone. Measured again (up to
    // kAttempts times, kSettleMs apart) while another thread of the process was seen running: a thread pool that
    // spins for a while after it starts (OpenBLAS's, when numpy loads) makes every MOVE pay the IPI.
    MovePrices out;
    for (unsigned attempt = 0; attempt < kAttempts; ++attempt) {
        bool disturbed = false;
        std::exception_ptr error;
        std::thread measurer([&] {
            try {
                out = measure_pinned(measurer_cpu, sibling_cpu, &disturbed);
            } catch (...) {
                error = std::current_exception();
            }
        });
        measurer.join();  // orders the thread's writes to out, disturbed and error before the reads below
        if (error) std::rethrow_exception(error);
        if (!disturbed || attempt + 1 == kAttempts) break;
        detail::sleep_for_ns(kSettleMs * 1000000);
    }
    out.measured_ms = (now_s() - t0) * 1e3;
    return out;
}

const MovePrices& machine_move_prices() {
    // A function-local static: initialized once, thread-safe (a concurrent caller waits); an exception leaves it
    // uninitialized, so the next call measures again.
    static const MovePrices prices = measure_move_prices();
    return prices;
}

namespace {
std::mutex g_what_if_lock;
bool g_what_if = false;
MovePrices g_what_if_prices;
}  // namespace

void set_collector_move_prices(const MovePrices* p) {
    std::lock_guard<std::mutex> lock(g_what_if_lock);
    g_what_if = p != nullptr;
    if (p) g_what_if_prices = *p;
}

MovePrices collector_move_prices() {
    {
        std::lock_guard<std::mutex> lock(g_what_if_lock);
        if (g_what_if) return g_what_if_prices;
    }
    return machine_move_prices();
}

double copy_cost_ns(const MovePrices& p, uint64_t pages) {
    return p.copy_ns_per_ioctl + static_cast<double>(pages) * p.copy_ns_per_page;
}

double move_cost_ns(const MovePrices& p, uint64_t pages, bool another_thread_on_cpu) {
    return (another_thread_on_cpu ? p.shootdown_ns : 0.0) + p.move_ns_per_ioctl +
           static_cast<double>(pages) * p.move_ns_per_page;
}

bool move_is_cheaper(const MovePrices& p, uint64_t pages, bool another_thread_on_cpu) {
    return pages > 0 && move_cost_ns(p, pages, another_thread_on_cpu) < copy_cost_ns(p, pages);
}

uint64_t break_even_run(const MovePrices& p, bool another_thread_on_cpu) {
    // MOVE wins a run of n pages iff fixed + n * per_page > 0, with MOVE's advantages:
    const double fixed = p.copy_ns_per_ioctl - p.move_ns_per_ioctl - (another_thread_on_cpu ? p.shootdown_ns : 0.0);
    const double per_page = p.copy_ns_per_page - p.move_ns_per_page;
    if (!(per_page >= 0)) return kMoveNever;  // long runs lose (or NaN prices): no threshold holds
    // Per-page prices equal to within their sums' rounding (a relative difference below 2^-45): the fixed prices
    // decide at every length, when they outweigh the sums' rounding up to runs of 2^41 pages (8 PiB of 4 KiB
    // pages), the per-ioctl terms' own included.
    // `scale` and `fixed_scale`: the magnitudes whose rounding the comparison suffers (per page, per ioctl).
    const double scale = std::max(p.copy_ns_per_page, p.move_ns_per_page);
    const double fixed_scale =
        std::max(p.copy_ns_per_ioctl, p.move_ns_per_ioctl + (another_thread_on_cpu ? p.shootdown_ns : 0.0));
    const bool equal = per_page <= scale * 0x1p-45;
    if (equal && !(fixed > (fixed_scale + scale * 0x1p41) * 0x1p-50 && move_is_cheaper(p, 1, another_thread_on_cpu)))
        return kMoveNever;
    uint64_t n = 1;
    if (!move_is_cheaper(p, 1, another_thread_on_cpu)) {
        const double past = -fixed / per_page;  // MOVE wins iff n > past
        if (!(past < kMaxRun)) return kMoveNever;
        n = static_cast<uint64_t>(std::floor(past)) + 1;
    }
    // Past the break-even MOVE's margin grows by per_page a page, but the sums' rounding can hide it for about
    // `band` pages: more than a few, and rounding, not the prices, decides there (nearly equal per-page prices
    // with a long break-even): no threshold holds.
    constexpr uint64_t kSettleSteps = 64;
    const double band = (fixed_scale + static_cast<double>(n) * scale) * 0x1p-51 / per_page;
    if (!equal && !(band < static_cast<double>(kSettleSteps))) return kMoveNever;
    // Rounding in the division may be off by a few from the cost comparison itself: settle on the first winner, a
    // bounded number of steps either way, then check that MOVE keeps winning beyond it (right after it and at every
    // power of two up to 2^41 pages).
    uint64_t steps = 0;
    for (; n > 1 && move_is_cheaper(p, n - 1, another_thread_on_cpu); --n)
        if (++steps > kSettleSteps) return kMoveNever;
    for (steps = 0; !move_is_cheaper(p, n, another_thread_on_cpu); ++n)
        if (++steps > kSettleSteps || static_cast<double>(n) >= kMaxRun) return kMoveNever;
    for (uint64_t d = 1; d <= kSettleSteps; ++d)
        if (!move_is_cheaper(p, n + d, another_thread_on_cpu)) return kMoveNever;
    for (unsigned b = 0; b <= 41; ++b)
        if (!move_is_cheaper(p, n + (uint64_t{1} << b), another_thread_on_cpu)) return kMoveNever;
    return n;
}

}  // namespace compactor
