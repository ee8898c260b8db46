// What installing a run of pages costs on this machine with UFFDIO_COPY and with UFFDIO_MOVE, measured in a few
// milliseconds, and the decision those prices imply: MOVE a run, or COPY it.
//
// The model. Installing a run of n present pages by one ioctl costs
//     COPY:  copy_ns_per_ioctl + n * copy_ns_per_page
//     MOVE:  move_ns_per_ioctl + n * move_ns_per_page  (+ shootdown_ns while another thread of this process runs
//                                                         on another CPU)
// COPY copies 4 KiB into a fresh page; MOVE only re-points a PTE, but it must clear and flush the source PTE. This
// kernel batches that flush once per ioctl (per PMD) for runs of present small pages (commit 50944692052b), and on
// x86 the flush reaches every other CPU where this mm is live by IPI — a VM exit in a VM, several µs. So the
// shootdown is a fixed price per MOVE ioctl, paid when another thread runs, and a MOVE of a long run pays it once:
// long runs go to MOVE, short ones to COPY when mutators run. On arm64 TLBI is broadcast in hardware and
// shootdown_ns comes out near 0.
//
// A thread that goes to sleep does not free its CPU from the shootdown at once: its idle CPU stays in the mm's
// CPU mask (lazy TLB) and still takes the IPI of the first MOVEs after the sleep began, then none until the thread
// runs again. How many is measured too (shootdowns_after_sleep: 2 on Linux 6.18 in an x86 KVM guest, whether the
// first MOVE comes 5 µs or 900 µs into the sleep). So a mutator that wakes every 100 µs costs MOVE about two
// shootdowns per wake-up however few pages it touches; the GC thread counts its MOVEs since a mutator last went
// to sleep and prices those first ones with the shootdown.
//
// The per-page and per-ioctl prices are fit from runs of 1 page and of kRunPages pages:
//     cost(n) = per_ioctl + n * per_page,  per_page = (cost(kRunPages) - cost(1)) / (kRunPages - 1).
// Each is a median over a few interleaved repetitions; the moved pages are recycled (already populated) pages, as
// the GC's from-space pages are. A MOVE whose source page must first be allocated costs far more (see the
// install floor's write_then_move): these prices do not cover that case.
#pragma once

#include <cstdint>
#include <limits>

namespace compactor {

struct MovePrices {
    double copy_ns_per_page = 0;   // UFFDIO_COPY: each page more in one ioctl (copies 4 KiB, allocates the page)
    double copy_ns_per_ioctl = 0;  // UFFDIO_COPY: the fixed part of one ioctl (syscall, locks, walk)
    double move_ns_per_page = 0;   // UFFDIO_MOVE of present pages: each page more in one ioctl
    double move_ns_per_ioctl = 0;  // UFFDIO_MOVE: the fixed part of one ioctl, no other thread running
    double shootdown_ns = 0;       // UFFDIO_MOVE: the extra cost of one ioctl while another thread of this process
                                   // runs on another CPU (its TLB-flush IPI); 0 where only one CPU is allowed
    double shootdowns_after_sleep = 0;  // UFFDIO_MOVE: how many MOVE ioctls after another thread of this process
                                   // went to sleep still pay shootdown_ns (its idle CPU takes the IPI): the median
                                   // over a few sleeps of the TLB-shootdown interrupts its CPU took (where
                                   // /proc/interrupts counts them), else of shootdowns_after_sleep_timed; 0 where
                                   // idle CPUs are skipped or a shootdown costs nothing; at most 4, the MOVEs
                                   // timed per sleep (a kernel that interrupts an idle CPU every time reads 4)
    double shootdowns_after_sleep_timed = 0;  // the same read from the MOVEs' times alone (those that took more
                                   // than a fifth of the first's extra time over the last's): the check
    double measured_ms = 0;        // wall time the measurement took (0 when injected)
    bool measured = false;         // true when measured on this machine, false when given (tests, what-ifs)
};

// The run length the per-page prices are fit from (with runs of 1 page).
inline constexpr uint64_t kRunPages = 64;

// The plain prices assume no other thread of this process runs during the measurement: one that spins then (an
// OpenBLAS pool spins for some tens of ms after numpy loads) makes every MOVE pay the IPI, inflating
// move_ns_per_ioctl by the shootdown and leaving shootdown_ns near 0. Where /proc/interrupts counts shootdowns,
// the measurement sees that (the plain MOVEs interrupt the other CPU) and measures again, up to 3 times 30 ms apart.
//
// Measures the prices now (about 10 ms; up to some 100 ms while another thread runs, more on a loaded machine).
// The calling thread's CPU affinity is left as it is: the measurement runs on a thread of its own, pinned, with
// the sibling pinned to another allowed CPU. Needs userfaultfd with UFFD_FEATURE_MOVE: throws UffdUnavailable
// naming what is missing otherwise.
MovePrices measure_move_prices();

// The prices of this machine, measured on the first call and cached for the life of the process (thread-safe: a
// concurrent first caller waits for the one measurement). A failed measurement is not cached: it throws again.
const MovePrices& machine_move_prices();

// The model's cost in ns of installing a run of `pages` pages by one COPY ioctl, and by one MOVE ioctl.
double copy_cost_ns(const MovePrices& p, uint64_t pages);
double move_cost_ns(const MovePrices& p, uint64_t pages, bool another_thread_on_cpu);

// Whether installing a run of `pages` pages by one MOVE ioctl is cheaper than by one COPY ioctl at prices `p`
// (strictly: at equal cost COPY stays, it needs nothing exclusive of the source). `another_thread_on_cpu`: another
// thread of this process runs on another CPU now, so the MOVE pays shootdown_ns. False for 0 pages. Pure: depends
// on its arguments only (inject prices by passing them).
bool move_is_cheaper(const MovePrices& p, uint64_t pages, bool another_thread_on_cpu);

// break_even_run's answer when no run is long enough for MOVE to win.
inline constexpr uint64_t kMoveNever = std::numeric_limits<uint64_t>::max();

// The shortest run from which on MOVE is cheaper, at that length and every longer one: 1 when MOVE always wins,
// kMoveNever when no run is long enough — MOVE costs more per page than COPY, or the same per page and not less
// per ioctl, or the break-even lies past any address space (beyond 2^52 pages). Where MOVE costs more per page but
// less per ioctl (no real kernel; a what-if), short runs win and long ones lose: no threshold "MOVE runs of at
// least k pages" holds, so that is kMoveNever too, while move_is_cheaper still answers for each length. So is a
// what-if whose comparison rounding decides: per-page prices equal to their last few digits, whose costs tie on
// long runs or flip near a break-even of billions of pages.
// So pages >= break_even_run(p, t) implies move_is_cheaper(p, pages, t) (checked up to 2^41 pages past it), and for
// a real kernel (MOVE cheaper per page) the converse holds as well.
uint64_t break_even_run(const MovePrices& p, bool another_thread_on_cpu);

// The prices hybrid's auto policy follows: this machine's (machine_move_prices()), unless a what-if replaced them
// (set_collector_move_prices: "if shootdowns were free, as with arm64's broadcast TLBI"; tests inject prices so).
// nullptr restores the measured ones. Thread-safe.
void set_collector_move_prices(const MovePrices* p);
MovePrices collector_move_prices();

}  // namespace compactor
