// Mutator threads: touch objects like an app during the concurrent phase. They read roots (already flipped to
// post-compact offsets in the pause), follow references a few hops and sometimes write a payload word, logging
// every write so verification can replay it. Every value read from the heap is bounds-checked, so an aborted run
// (pages unregistered and read as zeros) cannot make a mutator wander outside the space.
#include <cstring>
#include <ctime>

#include "compaction_context.hpp"
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

// The root the next access starts from, in the configured access pattern.
uint64_t next_root(const Context& ctx, ThreadCtx& tc, uint64_t& sequential) {
    const uint64_t nroots = ctx.num_roots;
    switch (ctx.cfg.access) {
        case Access::Sequential: return sequential++ % nroots;
        case Access::HotSet: {
            const uint64_t hot = nroots / 10 ? nroots / 10 : 1;
            return tc.rng.uniform() < 0.9 ? tc.rng.next() % hot : tc.rng.next() % nroots;
        }
        default: return tc.rng.next() % nroots;
    }
}

// Test hook: one access after the phase ended, on an empty page.
uint64_t late_access_for_test(const Context& ctx) {
    const uint64_t ns = static_cast<uint64_t>(ctx.cfg.late_access_seconds * 1e9);
    timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
    nanosleep(&ts, nullptr);
    return vload64(ctx.to_space + ctx.heap_size - ctx.ps);
}

}  // namespace

void run_mutator(Context& ctx, ThreadCtx& tc, unsigned index) {
    set_thread_ctx(&tc);
    if (!ctx.cfg.mutator_cpus.empty()) pin_to(ctx.cfg.mutator_cpus[index % ctx.cfg.mutator_cpus.size()]);
    while (!ctx.start_mutators.load(std::memory_order_acquire)) {
        if (ctx.stop_mutators.load(std::memory_order_acquire)) return;
        timespec ts{0, 50000};
        nanosleep(&ts, nullptr);
    }
    const bool timed_accesses = ctx.mode == FaultMode::Thread;
    const uint64_t nroots = ctx.num_roots;
    uint64_t sequential = index * 7919u;
    uint64_t sink = 0;
    Counters& c = tc.counters;
    bool ready = false;
    if (nroots == 0) {  // nothing to touch: do not hold the phase's start back
        ready = true;
        ctx.mutators_ready.fetch_add(1, std::memory_order_acq_rel);
    }
    while (!ctx.stop_mutators.load(std::memory_order_relaxed) && nroots > 0) {
        uint64_t off = ctx.roots[next_root(ctx, tc, sequential)];
        for (unsigned hop = 0; hop <= ctx.cfg.hops; ++hop) {
            if (off == kNullRef || off % 8 || off + kMinObjectSize > ctx.heap_size) break;
            const uint8_t* obj = ctx.to_space + off;
            const bool timed = timed_accesses && !pages_mapped(ctx, off, kMinObjectSize);
            const uint64_t t0 = timed ? now_ns() : 0;
            const ObjectHeader h = unpack_header(vload64(obj));
            if (h.klass != kClassObject || h.size < min_object_size(h.num_refs) || off + h.size > ctx.heap_size) break;
            const uint64_t id = vload64(obj + kIdentityOffset);
            const uint32_t pay = payload_offset(h.num_refs);
            const uint64_t nwords = (h.size - pay) / 8;
            if (nwords) {
                const uint64_t w = tc.rng.next() % nwords;
                uint8_t* word = const_cast<uint8_t*>(obj) + pay + 8 * w;
                if (tc.rng.uniform() < ctx.cfg.write_fraction && tc.writes.size() < tc.writes.capacity()) {
                    const uint64_t value = tc.rng.next();
                    const uint64_t old = __atomic_exchange_n(reinterpret_cast<uint64_t*>(word), value, __ATOMIC_RELAXED);
                    tc.writes.push_back(PayloadWrite{id, w, old, value});
                    c.mutator_writes += 1;
                } else {
                    sink += vload64(word);
                }
            }
            uint32_t next = kNullRef;
            if (h.num_refs) next = vload32(obj + kRefsOffset + 4 * (tc.rng.next() % h.num_refs));
            if (timed) record_latency(tc, now_ns() - t0, ctx.cfg.max_samples);
            c.mutator_accesses += 1;
            off = next;
        }
        if (!ready) {
            ready = true;
            ctx.mutators_ready.fetch_add(1, std::memory_order_acq_rel);
        }
    }
    if (ctx.cfg.late_access_seconds > 0) sink += late_access_for_test(ctx);
    asm volatile("" : : "r"(sink) : "memory");
}

}  // namespace compactor::detail
