// Trace events of one collection (the trace_events option): what each thread did when, recorded into per-thread
// buffers allocated before the phase and written with no allocation, no lock and no system call but the clock
// (async-signal-safe: mutators record inside their SIGBUS handlers). Python's compactor.trace turns them into a
// Perfetto trace; the runner prints them in its JSON ("trace"). The kinds, phases and methods below are the one
// definition of their names (TRACE_EVENT_KINDS etc. in Python, the "kinds" table of the JSON).
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <type_traits>
#include <vector>

namespace compactor {

// X(enumerator, name): a slice kind (Begin/End pairs) or a counter (Counter events).
#define COMPACTOR_TRACE_KINDS(X)                                                                                     \
    X(Pause, "pause")                       /* collection thread: the compaction pause */                              \
    X(Phase, "concurrent phase")            /* collection thread: end of the pause to the GC thread's end */           \
    X(Finish, "finish")                     /* collection thread: mutators stopped, unregistered */                    \
    X(GcRun, "gc run")                      /* GC thread: one run, compacted then installed; arg0 top page */          \
    X(Compact, "compact")                   /* compaction of a run (GC) or of one page (fault); arg0 page */           \
    X(Install, "install")                   /* one install ioctl: arg0 first page, arg1 pages, method */               \
    X(Release, "release")                   /* GC thread: from-space given back (madvise / munmap); arg1 MiB */        \
    X(WaitMutators, "wait for mutators")    /* GC thread: waiting for the pages mutators own */                        \
    X(Fault, "fault")                       /* mutator (SIGBUS handler) or fault thread: one fault; arg0 page */       \
    X(Wait, "wait")                         /* waiting for a page another thread owns; arg0 page */                    \
    X(FreshPage, "fresh page")              /* a fresh page above the post-compact end installed; arg0 page */         \
    X(PagesMapped, "pages mapped")          /* counter: pages installed so far, fresh ones too (at GC runs' ends) */  \
    X(TlbShootdowns, "TLB shootdowns")      /* counter: TLB-shootdown IPIs since the phase began (system-wide) */

enum class TraceKind : uint8_t {
#define COMPACTOR_TRACE_ENUM(e, n) e,
    COMPACTOR_TRACE_KINDS(COMPACTOR_TRACE_ENUM)
#undef COMPACTOR_TRACE_ENUM
};
// Begin and End of a slice; Counter: arg0 is the counter's value.
enum class TracePhase : uint8_t { Begin, End, Counter };
// Install events: the ioctl (an End event's method is what it finally was; arg1: pages it installed).
enum class TraceMethod : uint8_t { None, Copy, Move, Zeropage };

constexpr const char* kTraceKindNames[] = {
#define COMPACTOR_TRACE_NAME(e, n) n,
    COMPACTOR_TRACE_KINDS(COMPACTOR_TRACE_NAME)
#undef COMPACTOR_TRACE_NAME
};
constexpr const char* kTracePhaseNames[] = {"begin", "end", "counter"};
constexpr const char* kTraceMethodNames[] = {"", "COPY", "MOVE", "ZEROPAGE"};
// The columns of an event as the JSON and Python's arrays give them (TraceEvent's fields, in this order).
constexpr const char* kTraceColumns[] = {"ts_ns", "kind", "phase", "arg0", "arg1", "method", "errno"};

// One event: 24 bytes, plain data.
struct TraceEvent {
    uint64_t ts_ns;  // CLOCK_MONOTONIC
    uint64_t arg0;   // page (first page), or a counter's value
    uint32_t arg1;   // pages, or another count
    uint8_t kind, phase, method, errno_;  // errno_: the install ioctl's error (End), 0 when it succeeded
};
static_assert(std::is_trivially_copyable<TraceEvent>::value && sizeof(TraceEvent) == 24, "TraceEvent is plain data");

// One thread's buffer: `capacity` events, allocated (and touched) before the phase. Recording claims a slot with
// a lock-free atomic increment (a signal handler nested on the same thread claims its own), so `next_` may pass
// the capacity: the events beyond it are dropped, and counted. Disabled (capacity 0): every record() is one predictable branch.
class TraceBuffer {
public:
    void reserve(uint64_t capacity) {
        events_.assign(capacity, TraceEvent{});  // touched now: no page fault on the signal path
        data_ = events_.data();
        capacity_ = capacity;
    }
    bool on() const { return capacity_ != 0; }
    void record(TraceKind k, TracePhase p, uint64_t arg0 = 0, uint64_t arg1 = 0, TraceMethod m = TraceMethod::None,
                int err = 0) {
        if (__builtin_expect(capacity_ == 0, 1)) return;
        // The slot first, then the clock: a handler nested between the two would otherwise take an earlier slot
        // with a later time, and the thread's events would not be in time order.
        const uint64_t i = __atomic_fetch_add(&next_, 1, __ATOMIC_RELAXED);  // lock-free: signal-safe
        if (i >= capacity_) return;  // full: dropped (counted by next_ - capacity_)
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        store(i, static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec), k, p, arg0, arg1,
              m, err);
    }
    void record_at(uint64_t ts_ns, TraceKind k, TracePhase p, uint64_t arg0 = 0, uint64_t arg1 = 0,
                   TraceMethod m = TraceMethod::None, int err = 0) {
        if (__builtin_expect(capacity_ == 0, 1)) return;
        const uint64_t i = __atomic_fetch_add(&next_, 1, __ATOMIC_RELAXED);  // lock-free: signal-safe
        if (i >= capacity_) return;  // full: dropped (counted by next_ - capacity_)
        store(i, ts_ns, k, p, arg0, arg1, m, err);
    }
    void store(uint64_t i, uint64_t ts_ns, TraceKind k, TracePhase p, uint64_t arg0, uint64_t arg1, TraceMethod m,
               int err) {
        data_[i] = TraceEvent{ts_ns, arg0, static_cast<uint32_t>(arg1), static_cast<uint8_t>(k),
                              static_cast<uint8_t>(p), static_cast<uint8_t>(m), static_cast<uint8_t>(err > 255 ? 255 : err)};
    }
    uint64_t size() const {
        const uint64_t n = __atomic_load_n(&next_, __ATOMIC_RELAXED);
        return n < capacity_ ? n : capacity_;
    }
    uint64_t dropped() const {
        const uint64_t n = __atomic_load_n(&next_, __ATOMIC_RELAXED);
        return n > capacity_ ? n - capacity_ : 0;
    }
    // The recorded events (the buffer is left empty); after the threads that record into it have ended.
    std::vector<TraceEvent> take() {
        events_.resize(size());
        events_.shrink_to_fit();  // the reserved but unused capacity goes back before verification runs
        std::vector<TraceEvent> out = std::move(events_);
        events_.clear();
        return out;
    }

private:
    std::vector<TraceEvent> events_;
    TraceEvent* data_ = nullptr;
    uint64_t capacity_ = 0;
    uint64_t next_ = 0;  // updated with __atomic builtins (the class stays movable)
};

// One thread's events in a collection's result.
struct ThreadTrace {
    std::string thread;  // "collector", "GC thread", "mutator 0", ..., "fault thread"
    std::vector<TraceEvent> events;
    uint64_t dropped = 0;  // events that did not fit the buffer
};

}  // namespace compactor
