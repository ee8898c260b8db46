// Mutator threads: app threads during a collection. Before the pause they run read-only for pre_pause_ms (the rate
// the phase is compared with) and park at the pause's checkpoint; after it they read roots (flipped to post-compact
// offsets in the pause), follow references a few hops and sometimes write a payload word, logging every write so
// verification can replay it. Between access chains they think (busy or asleep), as UI threads they access for a
// share of each frame and sleep until the next vsync, and they allocate real objects in TLABs above the
// post-compact end, whose fresh pages fault like any other. Every value read from the heap is bounds-checked, so an
// aborted run (pages unregistered and read as zeros) cannot make a mutator wander outside the space.
#include <cstring>
#include <ctime>
#include <sys/syscall.h>
#include <unistd.h>

#include "compaction_context.hpp"
#include "compactor/mapping.hpp"
#include "compactor/object_layout.hpp"

namespace compactor::detail {

using namespace layout;

namespace {

inline uint64_t vload64(const uint8_t* p) { return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_RELAXED); }
inline uint32_t vload32(const uint8_t* p) { return __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_RELAXED); }

bool pages_mapped(const Context& ctx, uint64_t off, uint64_t len) {
    const uint64_t first = off / ctx.ps, last = (off + len - 1) / ctx.ps;
    for (uint64_t p = first; p <= last && p < ctx.num_pages; ++p)
        if (!ctx.page_states->is_mapped(p)) return false;
    return true;
}

// Allocations before the pause go to private memory of this size (reused from its start when full): the cost of
// touching fresh memory with no collection running.
constexpr uint64_t kPrePauseArena = 4u << 20;
// A chain boundary allocates at most this many objects (after a long stall the mutator catches up over several).
constexpr unsigned kMaxAllocationsPerChain = 256;
// The share of chains that start at one of the mutator's own recent objects (reachable from it, as its stack
// and locals would hold them), and how far back it looks.
constexpr double kOwnObjectChains = 0.25;
constexpr uint64_t kRecentObjects = 1024;
// Sleeps are cut into slices this long so that a stop request is seen soon.
constexpr uint64_t kSleepSliceNs = 1000000;

class Mutator {
public:
    Mutator(Context& ctx, ThreadCtx& tc, unsigned index)
        : ctx_(ctx), cfg_(ctx.cfg), tc_(tc), c_(tc.counters), index_(index), sequential_(index * 7919u),
          frame_ns_(cfg_.frame_hz > 0 ? static_cast<uint64_t>(1e9 / cfg_.frame_hz) : 0),
          frame_active_ns_(static_cast<uint64_t>(static_cast<double>(frame_ns_) * cfg_.frame_duty)),
          arena_(cfg_.alloc_rate > 0 && cfg_.pre_pause_ms > 0
                     ? Mapping(kPrePauseArena > cfg_.tlab ? kPrePauseArena : cfg_.tlab, true)
                     : Mapping()) {}

    void Run() {
        set_thread_ctx(&tc_);
        tc_.may_touch_heap = 1;
        ctx_.mutator_tids[index_].store(static_cast<int>(syscall(SYS_gettid)), std::memory_order_release);
        if (!cfg_.mutator_cpus.empty()) pin_to(cfg_.mutator_cpus[index_ % cfg_.mutator_cpus.size()]);
        ctx_.mutators_on_cpu.fetch_add(1, std::memory_order_relaxed);
        RunBeforeThePause();
        if (!ParkUntilResumed()) return;
        RunThePhase();
        ctx_.mutators_on_cpu.fetch_sub(1, std::memory_order_relaxed);
        if (cfg_.late_access_seconds > 0) sink_ += LateAccessForTest();
        asm volatile("" : : "r"(sink_) : "memory");
        ctx_.mutator_tids[index_].store(0, std::memory_order_release);
    }

private:
    // The pristine heap, read only (a write would change what the collection must preserve); allocations go to a
    // private arena. Ends when the pause's checkpoint is raised.
    void RunBeforeThePause() {
        if (cfg_.pre_pause_ms <= 0 || ctx_.num_roots == 0) return;
        const uint64_t t0 = now_ns();
        StartPacing(t0);
        uint64_t accesses = 0;
        while (!ctx_.park_mutators.load(std::memory_order_acquire) && !stopped()) {
            accesses += AccessChain(false);
            AllocateDue(false);
            Pace();
        }
        c_.pre_pause_accesses += accesses;
        c_.pre_pause_ns += now_ns() - t0;
        c_.mutator_accesses = 0;  // the phase's count starts at the pause
    }

    // Parks at the pause's checkpoint until the phase starts; false when the collection stopped instead.
    // Its signal handlers leave the heap alone while it is parked: the pause moves the heap away and registers it.
    bool ParkUntilResumed() {
        tc_.may_touch_heap = 0;
        ctx_.mutators_parked.fetch_add(1, std::memory_order_acq_rel);
        while (!ctx_.start_mutators.load(std::memory_order_acquire)) {
            if (stopped()) {
                ctx_.mutators_on_cpu.fetch_sub(1, std::memory_order_relaxed);
                ctx_.mutator_tids[index_].store(0, std::memory_order_release);
                return false;
            }
            sleep_for_ns(50000);
        }
        tc_.may_touch_heap = 1;
        return true;
    }

    void RunThePhase() {
        const uint64_t t0 = ctx_.t_resume_ns;
        StartPacing(now_ns());
        bool ready = false, window_open = true;
        if (ctx_.num_roots == 0) {  // nothing to touch: do not hold the phase's start back
            ready = true;
            ctx_.mutators_ready.fetch_add(1, std::memory_order_acq_rel);
        }
        uint64_t accesses = 0;
        while (!stopped() && ctx_.num_roots > 0) {
            accesses += AccessChain(true);
            if (!ready) {
                ready = true;
                ctx_.mutators_ready.fetch_add(1, std::memory_order_acq_rel);
            }
            if (window_open && ctx_.all_mapped.load(std::memory_order_acquire)) {  // the slow-path window closed
                window_open = false;
                c_.phase_accesses += accesses;
                c_.phase_ns += ctx_.t_all_mapped_ns - t0;
            }
            AllocateDue(true);
            Pace();
        }
        if (window_open) {  // stopped before seeing the window close: at its end, or now after an abort
            c_.phase_accesses += accesses;
            c_.phase_ns += (ctx_.all_mapped.load(std::memory_order_acquire) ? ctx_.t_all_mapped_ns : now_ns()) - t0;
        }
    }

    // One access chain: a root (or one of this mutator's own objects), then up to `hops` references. Returns the
    // objects accessed. `in_phase`: the to-space may fault and payload writes are allowed (and logged).
    uint64_t AccessChain(bool in_phase) {
        const bool timed_accesses = in_phase && ctx_.mode == FaultMode::Thread;
        uint64_t off = FirstObjectOfChain(in_phase);
        uint64_t accessed = 0;
        for (unsigned hop = 0; hop <= cfg_.hops; ++hop) {
            if (off == kNullRef || off % 8 || off + kMinObjectSize > ctx_.heap_size) break;
            const uint8_t* obj = ctx_.to_space + off;
            const bool timed = timed_accesses && !pages_mapped(ctx_, off, kMinObjectSize);
            const uint64_t t0 = timed ? now_ns() : 0;
            const ObjectHeader h = unpack_header(vload64(obj));
            if (h.klass != kClassObject || h.size < min_object_size(h.num_refs) || off + h.size > ctx_.heap_size) break;
            const uint64_t id = vload64(obj + kIdentityOffset);
            const uint32_t pay = payload_offset(h.num_refs);
            const uint64_t nwords = (h.size - pay) / 8;
            if (nwords) {
                const uint64_t w = tc_.rng.next() % nwords;
                uint8_t* word = const_cast<uint8_t*>(obj) + pay + 8 * w;
                // New objects are not written: they are checked against their allocation, not the write log.
                const bool may_write = in_phase && off < ctx_.alloc_base && tc_.writes.size() < tc_.writes.capacity();
                if (may_write && tc_.rng.uniform() < cfg_.write_fraction) {
                    const uint64_t value = tc_.rng.next();
                    const uint64_t old = __atomic_exchange_n(reinterpret_cast<uint64_t*>(word), value, __ATOMIC_RELAXED);
                    tc_.writes.push_back(PayloadWrite{id, w, old, value});
                    c_.mutator_writes += 1;
                } else {
                    sink_ += vload64(word);
                }
            }
            uint32_t next = kNullRef;
            if (h.num_refs) next = vload32(obj + kRefsOffset + 4 * (tc_.rng.next() % h.num_refs));
            if (timed) record_latency(tc_, now_ns() - t0, cfg_.max_samples);
            c_.mutator_accesses += 1;
            accessed += 1;
            off = next;
        }
        return accessed;
    }

    uint64_t FirstObjectOfChain(bool in_phase) {
        const std::vector<uint32_t>& own = tc_.new_objects;
        if (in_phase && !own.empty() && tc_.rng.uniform() < kOwnObjectChains) {
            const uint64_t recent = own.size() < kRecentObjects ? own.size() : kRecentObjects;
            return own[own.size() - 1 - tc_.rng.next() % recent];
        }
        const uint64_t nroots = ctx_.num_roots;
        switch (cfg_.access) {
            case Access::Sequential: return ctx_.roots[sequential_++ % nroots];
            case Access::HotSet: {
                const uint64_t hot = nroots / 10 ? nroots / 10 : 1;
                return ctx_.roots[tc_.rng.uniform() < 0.9 ? tc_.rng.next() % hot : tc_.rng.next() % nroots];
            }
            default: return ctx_.roots[tc_.rng.next() % nroots];
        }
    }

    // ---- Allocation: alloc_rate bytes per second of wall time since pacing started, bump-pointer in TLABs.

    void AllocateDue(bool in_phase) {
        if (cfg_.alloc_rate == 0 || alloc_exhausted_ || (!in_phase && arena_.length() == 0)) return;
        const double due = static_cast<double>(cfg_.alloc_rate) * static_cast<double>(now_ns() - alloc_start_) * 1e-9;
        for (unsigned n = 0; n < kMaxAllocationsPerChain && static_cast<double>(allocated_) < due; ++n)
            if (!AllocateOne(in_phase)) break;
    }

    // Allocates and initializes the next object; false when no TLAB is left (the phase's free space is used up).
    bool AllocateOne(bool in_phase) {
        const uint64_t number = in_phase ? tc_.new_objects.size() : scratch_number_++;
        const uint64_t identity = new_object_identity(index_, number);
        const uint32_t size = new_object_size(identity);
        if (tlab_pos_ + size > tlab_end_ && !NextTlab(in_phase)) return false;
        uint8_t* obj = in_phase ? ctx_.to_space + tlab_pos_ : arena_.data() + tlab_pos_;
        const uint16_t nrefs = new_object_num_refs(identity);
        // References and payload, then header and identity (only this thread reads its new objects, so plain
        // stores suffice). The first store to a fresh page faults, and the strategy maps the page.
        for (uint32_t k = 0; k < nrefs; ++k) {
            const uint32_t ref = ctx_.roots[new_object_root(identity, k, ctx_.num_roots)];
            std::memcpy(obj + kRefsOffset + 4 * k, &ref, 4);
        }
        const uint32_t pay = payload_offset(nrefs);
        for (uint32_t w = 0; w < (size - pay) / 8; ++w) {
            const uint64_t v = initial_payload_word(identity, w);
            std::memcpy(obj + pay + 8 * w, &v, 8);
        }
        const uint64_t header = pack_header(size, nrefs, kClassObject);
        std::memcpy(obj, &header, 8);
        std::memcpy(obj + kIdentityOffset, &identity, 8);
        if (in_phase) {
            tc_.new_objects.push_back(static_cast<uint32_t>(tlab_pos_));
            c_.new_objects += 1;
            c_.allocated_bytes += size;
        }
        tlab_pos_ += size;
        allocated_ += size;
        return true;
    }

    bool NextTlab(bool in_phase) {
        if (!in_phase) {  // the private arena, reused from its start
            tlab_pos_ = tlab_end_ + cfg_.tlab <= arena_.length() ? tlab_end_ : 0;
            tlab_end_ = tlab_pos_ + cfg_.tlab;
            return true;
        }
        const uint64_t start = ctx_.alloc_top.fetch_add(cfg_.tlab, std::memory_order_relaxed);
        if (start + cfg_.tlab > ctx_.heap_size) {
            alloc_exhausted_ = true;
            c_.alloc_failures += 1;
            return false;
        }
        c_.tlabs += 1;
        tlab_pos_ = start;
        tlab_end_ = start + cfg_.tlab;
        return true;
    }

    // ---- Pacing: think time between chains, frames for UI threads.

    void StartPacing(uint64_t now) {
        frame_start_ = now;
        alloc_start_ = now;
        allocated_ = 0;
        tlab_pos_ = tlab_end_ = 0;
    }

    void Pace() {
        if (cfg_.think_ns > 0) {
            if (cfg_.think == Think::Busy) {
                const uint64_t until = now_ns() + cfg_.think_ns;
                while (now_ns() < until) asm volatile("" ::: "memory");
            } else {
                SleepOffCpu(now_ns() + cfg_.think_ns);
            }
        }
        if (frame_ns_ == 0) return;
        const uint64_t now = now_ns();
        if (now - frame_start_ < frame_active_ns_) return;
        c_.frames += 1;
        const uint64_t vsync = frame_start_ + frame_ns_;
        if (now >= vsync) {  // this frame's work ran past its vsync: a late (janky) frame; start afresh
            c_.frames_late += 1;
            frame_start_ = now;
            return;
        }
        SleepOffCpu(vsync);
        frame_start_ = vsync;
    }

    // Sleeps until `until` (CLOCK_MONOTONIC ns), in slices, off the CPU as far as the TLB-shootdown decision goes.
    // Each slice is a sleep of its own to the kernel (the thread wakes between them, and its CPU then owes the next
    // MOVEs' shootdowns again): each is counted, with when it began and how long slices last, for the GC thread's
    // shootdown pricing. The sleep count is bumped before the on-CPU count drops (release; the GC thread reads
    // them acquire), so that a GC thread that sees this mutator off its CPU also sees the sleep.
    void SleepOffCpu(uint64_t until) {
        bool off = false;
        for (uint64_t now = now_ns(); now < until && !stopped();) {
            ctx_.last_sleep_start_ns.store(now, std::memory_order_relaxed);
            ctx_.mutator_sleeps.fetch_add(1, std::memory_order_relaxed);
            if (!off) ctx_.mutators_on_cpu.fetch_sub(1, std::memory_order_release);
            off = true;
            sleep_for_ns(until - now < kSleepSliceNs ? until - now : kSleepSliceNs);
            const uint64_t woke = now_ns(), avg = ctx_.mutator_sleep_ns.load(std::memory_order_relaxed);
            ctx_.mutator_sleep_ns.store(avg ? (3 * avg + (woke - now)) / 4 : woke - now, std::memory_order_relaxed);
            now = woke;
        }
        if (off) ctx_.mutators_on_cpu.fetch_add(1, std::memory_order_relaxed);
    }

    bool stopped() const { return ctx_.stop_mutators.load(std::memory_order_relaxed); }

    // Test hook: one access after the phase ended, on an empty page.
    uint64_t LateAccessForTest() {
        sleep_for_ns(static_cast<uint64_t>(cfg_.late_access_seconds * 1e9));
        return vload64(ctx_.to_space + ctx_.heap_size - ctx_.ps);
    }

    Context& ctx_;
    const CollectorConfig& cfg_;
    ThreadCtx& tc_;
    Counters& c_;
    const unsigned index_;
    uint64_t sequential_;
    uint64_t sink_ = 0;
    const uint64_t frame_ns_, frame_active_ns_;
    uint64_t frame_start_ = 0;
    Mapping arena_;  // allocations before the pause (empty when not allocating then)
    uint64_t alloc_start_ = 0, allocated_ = 0, scratch_number_ = 0;
    uint64_t tlab_pos_ = 0, tlab_end_ = 0;
    bool alloc_exhausted_ = false;
};

}  // namespace

void run_mutator(Context& ctx, ThreadCtx& tc, unsigned index) { Mutator(ctx, tc, index).Run(); }

}  // namespace compactor::detail
