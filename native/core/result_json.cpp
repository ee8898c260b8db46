#include "compactor/result_json.hpp"

#include "compactor/mapping.hpp"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace compactor {

std::string json_escape(const std::string& s) {
    std::string o = "\"";
    for (unsigned char ch : s) {
        switch (ch) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\t': o += "\\t"; break;
            default:
                if (ch < 0x20) {
                    char b[8];
                    snprintf(b, sizeof b, "\\u%04x", ch);
                    o += b;
                } else {
                    o += static_cast<char>(ch);
                }
        }
    }
    return o + "\"";
}

namespace {

std::string num(double v) {
    if (!std::isfinite(v)) return "null";
    char b[40];
    snprintf(b, sizeof b, "%.9g", v);
    return b;
}
std::string num(uint64_t v) { return std::to_string(v); }
std::string inum(int64_t v) { return v < 0 ? "null" : std::to_string(v); }  // -1: not measurable here

class Obj {
public:
    Obj& kv(const std::string& k, const std::string& raw) {
        s_ += (first_ ? "" : ", ") + json_escape(k) + ": " + raw;
        first_ = false;
        return *this;
    }
    std::string str() const { return "{" + s_ + "}"; }

private:
    std::string s_;
    bool first_ = true;
};

double ratio(uint64_t a, uint64_t b, double scale = 1.0) {
    return b ? static_cast<double>(a) / static_cast<double>(b) * scale : std::nan("");
}

// What the app saw, from the raw counters (tests recompute each field from them).
std::string mutator_view_json(const CollectionStats& s) {
    const auto& v = s.latency_samples_ns;
    const double before = ratio(s.pre_pause_accesses, s.pre_pause_ns, 1e9), during = ratio(s.phase_accesses, s.phase_ns, 1e9);
    Obj fresh;
    fresh.kv("zeropage", num(s.pages_zeropage)).kv("zero_and_move", num(s.pages_fresh_zero_and_move))
        .kv("copy", num(s.pages_fresh_copy));
    Obj o;
    o.kv("pages_resolved_share", num(ratio(s.pages_by_mutators, s.pages_total)))
        .kv("fault_time_ms", num(static_cast<double>(s.fault_ns) * 1e-6)).kv("faults", num(static_cast<uint64_t>(v.size())))
        .kv("fault_p50_us", num(percentile_ns(v, 0.50) / 1e3)).kv("fault_p99_us", num(percentile_ns(v, 0.99) / 1e3))
        .kv("longest_stall_us", num(percentile_ns(v, 1.0) / 1e3))
        .kv("accesses_per_s_before", num(before)).kv("accesses_per_s_during", num(during))
        .kv("rate_during_vs_before", num(during / before))
        .kv("app_slow_path_ms", num(s.app_slow_path_s * 1e3)).kv("suspend_ms", num(s.suspend_s * 1e3))
        .kv("fresh_pages", fresh.str())
        .kv("fresh_install_ns_per_page", num(ratio(s.fresh_install_ns, s.pages_zeropage + s.pages_fresh_zero_and_move +
                                                                           s.pages_fresh_copy))).kv("new_objects", num(s.new_objects)).kv("allocated_bytes", num(s.allocated_bytes))
        .kv("alloc_failures", num(s.alloc_failures)).kv("frames", num(s.frames)).kv("frames_late", num(s.frames_late));
    return o.str();
}

template <size_t N>
std::string names_json(const char* const (&names)[N]) {
    std::string t = "[";
    for (size_t i = 0; i < N; ++i) t += (i ? ", " : "") + json_escape(names[i]);
    return t + "]";
}

}  // namespace

std::string trace_tables_json() {
    Obj o;
    o.kv("clock", json_escape("CLOCK_MONOTONIC")).kv("columns", names_json(kTraceColumns))
        .kv("kinds", names_json(kTraceKindNames)).kv("phases", names_json(kTracePhaseNames))
        .kv("methods", names_json(kTraceMethodNames));
    return o.str();
}

std::string trace_json(const CollectionStats& s) {
    std::string threads = "[";
    for (size_t t = 0; t < s.trace.size(); ++t) {
        const ThreadTrace& th = s.trace[t];
        std::string ev = "[";
        char row[160];
        for (size_t i = 0; i < th.events.size(); ++i) {
            const TraceEvent& e = th.events[i];
            snprintf(row, sizeof row, "%s[%" PRIu64 ", %u, %u, %" PRIu64 ", %u, %u, %u]", i ? ", " : "", e.ts_ns,
                     unsigned{e.kind}, unsigned{e.phase}, e.arg0, e.arg1, unsigned{e.method}, unsigned{e.errno_});
            ev += row;
        }
        Obj o;
        o.kv("name", json_escape(th.thread)).kv("dropped", num(th.dropped)).kv("events", ev + "]");
        threads += (t ? ", " : "") + o.str();
    }
    std::string tables = trace_tables_json();
    tables.pop_back();  // the tables' object, extended with the threads
    return tables + ", \"threads\": " + threads + "]}";
}

std::string collection_json(const CollectionOutcome& out, bool with_trace) {
    const CollectionStats& s = out.stats;
    Obj pages;
    pages.kv("total", num(s.pages_total)).kv("copy", num(s.pages_copy)).kv("move", num(s.pages_move))
        .kv("move_batched", num(s.pages_move_batched)).kv("dense_move", num(s.pages_dense_move))
        .kv("dense_copy", num(s.pages_dense_copy))
        .kv("zeropage", num(s.pages_zeropage)).kv("copy_fallback_pool_empty", num(s.pages_copy_fallback_pool))
        .kv("copy_fallback_ebusy", num(s.pages_copy_fallback_ebusy)).kv("copy_short_run", num(s.pages_copy_short_run))
        .kv("by_mutators", num(s.pages_by_mutators)).kv("fresh_zero_and_move", num(s.pages_fresh_zero_and_move))
        .kv("fresh_copy", num(s.pages_fresh_copy));
    Obj counters;
    counters.kv("ioctl_copy", num(s.ioctl_copy)).kv("ioctl_move", num(s.ioctl_move)).kv("ioctl_zeropage", num(s.ioctl_zeropage))
        .kv("bytes_copied", num(s.bytes_copied)).kv("bytes_moved", num(s.bytes_moved)).kv("eagain", num(s.eagain))
        .kv("eexist", num(s.eexist)).kv("eexist_moved", num(s.eexist_moved)).kv("ebusy", num(s.ebusy)).kv("enomem", num(s.enomem)).kv("enoent", num(s.enoent))
        .kv("injected_failures", num(s.injected)).kv("madvise_calls", num(s.madvise_calls))
        .kv("released_bytes", num(s.released_bytes)).kv("minor_faults", num(s.minor_faults))
        .kv("major_faults", num(s.major_faults)).kv("gc_minor_faults", num(s.gc_minor_faults))
        .kv("gc_voluntary_switches", num(s.gc_voluntary_switches))
        .kv("gc_involuntary_switches", num(s.gc_involuntary_switches)).kv("faults_handled", num(s.faults_handled))
        .kv("mutator_accesses", num(s.mutator_accesses)).kv("mutator_writes", num(s.mutator_writes))
        .kv("futex_waits", num(s.futex_waits)).kv("fault_ns", num(s.fault_ns)).kv("fresh_install_ns", num(s.fresh_install_ns))
        .kv("pre_pause_accesses", num(s.pre_pause_accesses)).kv("pre_pause_ns", num(s.pre_pause_ns))
        .kv("phase_accesses", num(s.phase_accesses)).kv("phase_ns", num(s.phase_ns))
        .kv("new_objects", num(s.new_objects)).kv("allocated_bytes", num(s.allocated_bytes)).kv("tlabs", num(s.tlabs))
        .kv("alloc_failures", num(s.alloc_failures)).kv("frames", num(s.frames)).kv("frames_late", num(s.frames_late))
        .kv("signals_sent", num(s.signals_sent)).kv("signals_handled", num(s.signals_handled))
        .kv("signals_in_fault_wait", num(s.signals_in_fault_wait)).kv("signal_heap_reads", num(s.signal_heap_reads))
        .kv("signal_heap_faults", num(s.signal_heap_faults));
    Obj swp;
    swp.kv("pages_paged_out", num(s.pages_paged_out)).kv("swap_ins", inum(s.swap_ins)).kv("swap_outs", inum(s.swap_outs))
        .kv("major_faults", num(s.major_faults));
    Obj irq;
    irq.kv("tlb_shootdowns", inum(s.interrupts.tlb_shootdowns)).kv("function_call", inum(s.interrupts.function_call));
    Obj gct;
    gct.kv("compact", num(s.gc_compact_ns)).kv("install", num(s.gc_install_ns)).kv("release", num(s.gc_release_ns))
        .kv("wait_for_mutators", num(s.gc_wait_ns));
    Obj lat;
    const auto& v = s.latency_samples_ns;
    lat.kv("samples", num(static_cast<uint64_t>(v.size())))
        .kv("p50", num(percentile_ns(v, 0.50) / 1e3)).kv("p90", num(percentile_ns(v, 0.90) / 1e3))
        .kv("p99", num(percentile_ns(v, 0.99) / 1e3)).kv("p99.9", num(percentile_ns(v, 0.999) / 1e3))
        .kv("max", num(percentile_ns(v, 1.0) / 1e3));
    std::string hist = "[";
    for (int i = 0; i < kLatencyBuckets; ++i) hist += (i ? ", " : "") + num(s.latency_histogram[i]);
    hist += "]";
    auto histogram = [](const uint64_t* h, int n) {
        std::string t = "[";
        for (int i = 0; i < n; ++i) t += (i ? ", " : "") + num(h[i]);
        return t + "]";
    };
    Obj runs;
    runs.kv("moved", histogram(s.runs_moved, kRunLengthBuckets)).kv("copied", histogram(s.runs_copied, kRunLengthBuckets));
    Obj policy;  // hybrid's priced policy: the prices and the break-even runs they imply ("null": never)
    if (s.priced) {
        const MovePrices& p = s.prices;
        Obj prices;
        prices.kv("copy_ns_per_page", num(p.copy_ns_per_page)).kv("copy_ns_per_ioctl", num(p.copy_ns_per_ioctl))
            .kv("move_ns_per_page", num(p.move_ns_per_page)).kv("move_ns_per_ioctl", num(p.move_ns_per_ioctl))
            .kv("shootdown_ns", num(p.shootdown_ns)).kv("shootdowns_after_sleep", num(p.shootdowns_after_sleep))
            .kv("shootdowns_after_sleep_timed", num(p.shootdowns_after_sleep_timed)).kv("measured_ms", num(p.measured_ms))
            .kv("measured", p.measured ? "true" : "false");
        auto run = [](uint64_t n) { return n == kMoveNever ? std::string("null") : num(n); };
        MovePrices learned = p;
        learned.shootdown_ns = s.shootdown_ns_learned;
        policy.kv("prices", prices.str()).kv("break_even_run_alone", run(break_even_run(p, false)))
            .kv("break_even_run_under_load", run(break_even_run(p, true)))
            .kv("shootdown_ns_learned", num(s.shootdown_ns_learned)).kv("moves_learned_from", num(s.shootdowns_learned))
            .kv("break_even_run_under_load_learned", run(break_even_run(learned, true)));
    }
    char digest[24];
    snprintf(digest, sizeof digest, "0x%016" PRIx64, out.verify.after.digest);
    Obj o;
    o.kv("strategy", json_escape(s.strategy)).kv("faults", json_escape(s.faults))
        .kv("requested_strategy", json_escape(s.requested_strategy)).kv("fallback", json_escape(s.fallback))
        .kv("mutators", num(static_cast<uint64_t>(s.mutators))).kv("pause_s", num(s.pause_s))
        .kv("gc_thread_s", num(s.gc_thread_s)).kv("gc_thread_cpu_s", num(s.gc_thread_cpu_s))
        .kv("concurrent_s", num(s.concurrent_s)).kv("finish_s", num(s.finish_s))
        .kv("page_size", num(static_cast<uint64_t>(page_size()))).kv("cpus", num(static_cast<uint64_t>(s.cpus_online))).kv("threads_needed", num(static_cast<uint64_t>(s.threads_needed)))
        .kv("gc_time_ns", gct.str()).kv("pages", pages.str()).kv("counters", counters.str()).kv("interrupts", irq.str()).kv("swap", swp.str())
        .kv("fault_latency_us", lat.str()).kv("latency_histogram_log2_ns", hist)
        .kv("suspend_s", num(s.suspend_s)).kv("app_slow_path_s", num(s.app_slow_path_s))
        .kv("mutator_view", mutator_view_json(s)).kv("gc_runs_by_length_log2", runs.str())
        .kv("priced_policy", s.priced ? policy.str() : "null")
        .kv("verified", out.verify.verified ? "true" : "false").kv("digest", json_escape(digest))
        .kv("reachable_objects", num(out.verify.after.objects)).kv("reachable_bytes", num(out.verify.after.bytes))
        .kv("fillers", num(out.verify.fillers)).kv("new_objects_verified", num(out.verify.new_objects));
    if (with_trace && s.traced) o.kv("trace", trace_json(s));
    return o.str();
}

std::string floor_json(const std::vector<FloorMeasurement>& floor) {
    std::string s = "[";
    bool first = true;
    for (const auto& m : floor) {
        std::string reps = "[";
        for (size_t i = 0; i < m.ns_per_page.size(); ++i) reps += (i ? ", " : "") + num(m.ns_per_page[i]);
        reps += "]";
        Obj o;
        o.kv("name", json_escape(m.name)).kv("description", json_escape(m.description))
            .kv("pages_per_call", num(m.pages_per_call)).kv("median_ns_per_page", num(m.median_ns)).kv("ns_per_page", reps);
        s += (first ? "" : ", ") + o.str();
        first = false;
    }
    return s + "]";
}

}  // namespace compactor
