// Internal: the pieces the in-core measurements share (the install floor, install_floor.cpp, and the MOVE prices,
// move_prices.cpp): a clock, the ioctl-result check, the median, and a sibling thread that keeps this process's
// mm live on another CPU, as a running mutator does during a GC.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "compactor/uffd.hpp"

namespace compactor::detail {

// Seconds on the monotonic clock.
double now_s();

// Throws UffdError("<context>: <what> failed ...") unless `r` succeeded.
void must(const IoResult& r, const char* context, const char* what);

// The median of `values` (the mean of the two middle ones for an even count); 0 for none.
double median(std::vector<double> values);

// Another thread of this process that runs until destroyed, so that this mm stays live on a second CPU: a remote
// TLB flush (UFFDIO_MOVE clears source PTEs) must then reach that CPU by IPI on x86.
class SiblingThread {
public:
    enum class Kind {
        Busy,      // reads memory without pause, as a mutator does
        Yielding,  // calls sched_yield in a loop, as mutators waiting in SIGBUS handlers back off
        Sleeping,  // sleeps kSleepNs at a time (nanosleep), as a paced mutator between access chains
    };
    static constexpr uint64_t kSleepNs = 300000;
    // Starts the thread, pinned to `cpu` (-1: not pinned), and returns once it runs (there, when pinned).
    SiblingThread(Kind kind, int cpu = -1);
    ~SiblingThread();  // stops and joins it
    // Returns once the thread has made progress since the call: it is running now, not waiting for its CPU (on a
    // shared machine another process may hold that CPU for milliseconds, and then no IPI is needed).
    void wait_running() const;
    // Sleeping: returns once the thread has gone to sleep since the call (it counts each sleep before it starts),
    // and the number of its sleeps that have ended so far; woke_since(that) tells whether one ended since.
    uint64_t wait_asleep() const;
    bool woke_since(uint64_t ends) const { return wakes_.load(std::memory_order_acquire) != ends; }
    SiblingThread(const SiblingThread&) = delete;
    SiblingThread& operator=(const SiblingThread&) = delete;

private:
    std::atomic<bool> stop_{false};
    std::atomic<bool> running_{false};
    std::atomic<uint64_t> heartbeat_{0};  // counts the thread's loop passes (Sleeping: its sleeps begun)
    std::atomic<uint64_t> wakes_{0};      // Sleeping: its sleeps ended
    std::thread thread_;
};

// The "TLB:" (TLB-shootdown IPIs) and "CAL:" (function-call IPIs) rows of /proc/interrupts, per CPU since boot,
// read in one pass: `cpus` names each column's CPU (the header's "CPUn"). A row the kernel does not have (arm64
// broadcasts TLBI in hardware) is empty. Read outside timed intervals: it allocates.
struct InterruptRows {
    std::vector<int> cpus;
    std::vector<int64_t> tlb, function_call;
    // A row summed over CPUs, or -1 where it is missing.
    static int64_t sum(const std::vector<int64_t>& row);
    // A row's count on CPU `cpu`, or -1 where the row or the CPU's column is missing.
    int64_t on(const std::vector<int64_t>& row, int cpu) const;
};
InterruptRows read_interrupt_rows();

// The CPUs the calling thread may run on, in increasing order.
std::vector<int> allowed_cpus();

}  // namespace compactor::detail
