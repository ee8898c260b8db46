// Internal: the state every thread of one concurrent compaction shares, and the page state machine they obey.
// Everything reachable from a fault path here is async-signal-safe: atomics, memcpy, ioctl, clock_gettime.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "compactor/collector.hpp"
#include "compactor/mapping.hpp"
#include "compactor/uffd.hpp"

namespace compactor::detail {

// ART's per-page states (runtime/gc/collector/mark_compact.h PageState), as used here.
enum PageState : uint8_t {
    kUnprocessed = 0,         // nobody has claimed the to-space page yet
    kProcessing = 1,          // the GC thread claimed it and is compacting it into its batch
    kMutatorProcessing = 2,   // a mutator (SIGBUS handler) or the fault thread claimed it
    kProcessed = 3,           // compacted into the GC's batch, waiting for the batch's ioctl
    kProcessedAndMapping = 4, // inside the installing ioctl
    kProcessedAndMapped = 5,  // installed: accesses no longer fault
};

inline uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
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
    uint8_t* fresh = nullptr;       // move-alloc: never-touched pages, first-touched by compaction
    uint64_t buffer_pages = 0;
    Rng rng{1};
    CollectionStats counters;       // page / ioctl / error counters of this thread
    std::vector<uint64_t> samples;  // fault latency (ns), capacity reserved up front
    std::vector<PayloadWrite> writes;
    bool is_gc = false;
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
    std::unique_ptr<std::atomic<uint8_t>[]> state;

    // From-space reclamation: [reclaim_boundary, heap_size) is no longer read by any compaction.
    std::atomic<uint64_t> reclaim_boundary{0};
    // MOVE: recycled from-space pages are handed out top-down from [recycle_floor(), recycle_cursor).
    std::atomic<uint64_t> recycle_cursor{0};
    uint64_t dense_end = 0;

    std::atomic<uint64_t> progress{0};    // pages installed so far (the watchdog's heartbeat)
    std::atomic<bool> abort{false};
    std::atomic<bool> unregistered{false};
    std::atomic<bool> stop_mutators{false};
    std::atomic<bool> start_mutators{false};
    std::atomic<bool> gc_stalled{false};
    std::atomic<unsigned> mutators_ready{0};  // mutators that completed their first access  // test hook: the GC thread holds a page and sleeps
    std::atomic<int> handlers_in_flight{0};
    std::atomic<int> abort_err{0};
    char abort_reason[256] = {0};

    uint64_t recycle_floor() const {
        const uint64_t r = reclaim_boundary.load(std::memory_order_acquire);
        return r > dense_end ? r : dense_end;
    }
    bool in_space(uint64_t addr) const {
        return addr >= reinterpret_cast<uint64_t>(to_space) && addr < reinterpret_cast<uint64_t>(to_space) + heap_size;
    }
};

// Records why the run must stop (first caller wins) and raises the abort flag. Async-signal-safe.
void request_abort(Context& ctx, int err, const char* why);

// Hands out up to `want` contiguous recycled from-space pages; returns how many (0 = pool empty) and the start.
uint64_t recycle_pages(Context& ctx, uint64_t want, uint8_t** start);

// Installs `npages` compacted pages from `src` at to-space page `first_page` with COPY or MOVE, handling
// EAGAIN (retry), EEXIST (already there), EBUSY (MOVE -> COPY), ENOMEM (bounded retries, then abort).
// `batched` and `dense` only select counters. Returns false when the run was aborted.
bool install_pages(Context& ctx, ThreadCtx& tc, uint64_t first_page, uint8_t* src, uint64_t npages, bool move,
                   bool dense);

// The GC thread's COPY of a batch compacted into its own buffer because the recycled-page pool was empty.
bool install_pages_pool_empty(Context& ctx, ThreadCtx& tc, uint64_t first_page, uint8_t* src, uint64_t npages);

// A mutator's or the fault thread's resolution of one faulting page: claim it and compact + install it, or wait
// (sched_yield, then growing nanosleep) while another thread owns it. Returns true when this call installed the
// page (its COPY/MOVE/ZEROPAGE already woke any faulter on it). Async-signal-safe.
bool resolve_fault(Context& ctx, ThreadCtx* tc, uint64_t page);

// Records one fault-latency sample in the thread's histogram and sample log.
void record_latency(ThreadCtx& tc, uint64_t ns, uint64_t max_samples);

// Mutator thread body (mutators.cpp).
void run_mutator(Context& ctx, ThreadCtx& tc, unsigned index);

// Makes `tc` the context the SIGBUS handler finds for the calling thread (concurrent.cpp).
void set_thread_ctx(ThreadCtx* tc);

}  // namespace compactor::detail
