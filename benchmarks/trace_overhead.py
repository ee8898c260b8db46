"""What tracing costs (issue 21): a Perfetto trace of each collection (the trace_events option) must leave a traced
run comparable.

1. This build, tracing off against tracing on (trace_events = compactor.trace.DEFAULT_EVENTS per thread): copy and
   move, SIGBUS, 1 mutator (stress profile), 50% live, interleaved repetitions (off/on, then on/off, ...), the
   GC thread's time per pair; target: on at most 1.10x off (median of the paired ratios). Per traced run: the
   events, the trace file's size and the time to write it (compactor.trace.write_trace).
2. With --baseline REV (e.g. the commit before tracing, 9928cdc): that commit's compactor-runner against this
   tree's, tracing off, on one plan file, interleaved (before/after, after/before, ...): the cost of the disabled
   event sites (one predictable branch each); target: within noise (paired median ratio at most 1.02x, with the
   spread of the ratios printed). The runners are built as benchmarks/compaction.py builds them (kept in
   build/compaction-bench/ for the next run).

    python benchmarks/trace_overhead.py [--heap 256MiB] [--repeat 7] [--baseline REV]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

import compactor
from compactor.collector import make_config
from compactor.trace import DEFAULT_EVENTS, collection_name, thread_events, write_trace

STRATEGIES = ("copy", "move")
HERE = os.path.dirname(os.path.abspath(__file__))


def paired(num: list, den: list) -> float:
    return statistics.median(a / b for a, b in zip(num, den))


def spread(num: list, den: list) -> str:
    r = sorted(a / b for a, b in zip(num, den))
    return f"{r[0]:.3f}-{r[-1]:.3f}"


def in_this_build(heap_size: str, repeat: int, mutators: int) -> bool:
    heap = compactor.Heap.generate(compactor.HeapSpec(size=heap_size, live_fraction=0.5, seed=1))
    plan = compactor.plan(heap)
    gc = {(s, on): [] for s in STRATEGIES for on in (False, True)}
    sizes, writes, events, dropped = [], [], [], 0
    with tempfile.TemporaryDirectory(prefix="trace-overhead-") as tmp:
        path = os.path.join(tmp, "run.perfetto-trace")
        for rep in range(repeat):
            for s in STRATEGIES:
                for on in ((False, True) if rep % 2 == 0 else (True, False)):
                    r = compactor.collect(heap, s, mutators=mutators, plan=plan, seed=rep + 1,
                                          trace_events=DEFAULT_EVENTS if on else 0)
                    assert r.verified
                    gc[(s, on)].append(r.gc_thread_seconds)
                    if on:
                        assert r.trace is not None
                        t0 = time.perf_counter()
                        summary = write_trace(path, [(collection_name(r.raw), r.trace)])
                        writes.append(time.perf_counter() - t0)
                        sizes.append(summary.bytes)
                        events.append(summary.events)
                        dropped += sum(t.dropped for t in thread_events(r.trace))
    print(f"1. this build, {heap_size}, 50% live, SIGBUS, {mutators} mutator(s), {repeat} repetitions interleaved "
          f"(trace_events {DEFAULT_EVENTS} per thread when on)")
    print(f"  {'strategy':<8} {'GC ms off':>9} {'GC ms on':>9} {'on/off':>7} {'spread':>13}  target <= 1.10x")
    met = True
    for s in STRATEGIES:
        off, on = gc[(s, False)], gc[(s, True)]
        ratio = paired(on, off)
        met &= ratio <= 1.10
        print(f"  {s:<8} {1e3 * statistics.median(off):9.1f} {1e3 * statistics.median(on):9.1f} {ratio:6.3f}x "
              f"{spread(on, off):>13}  {'met' if ratio <= 1.10 else 'MISSED'}")
    print(f"  trace per collection: {statistics.median(events):.0f} events, {statistics.median(sizes) / 1024:.0f} KiB, "
          f"written in {1e3 * statistics.median(writes):.1f} ms (median); events dropped: {dropped}")
    return met


def against_baseline(rev: str, heap_size: str, repeat: int, mutators: int) -> bool:
    spec = importlib.util.spec_from_file_location("compaction_bench", os.path.join(HERE, "compaction.py"))
    assert spec is not None and spec.loader is not None
    cb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cb)  # its runner builds: one definition of how a runner is built for a comparison
    print(f"building the runners (baseline {rev}, this tree) ...", flush=True)
    runners = {"before": cb.baseline_runner(rev),
               "after": cb.build_runner(cb.ROOT, os.path.join(cb.BUILD_ROOT, "current"))}
    heap = compactor.Heap.generate(compactor.HeapSpec(size=heap_size, live_fraction=0.5, seed=1))
    with tempfile.TemporaryDirectory(prefix="trace-overhead-") as tmp:
        plan = os.path.join(tmp, "heap.plan")
        compactor.plan(heap).save(plan)
        del heap
        gc = {(b, s): [] for b in runners for s in STRATEGIES}
        for rep in range(repeat):
            for s in STRATEGIES:
                for b in (("before", "after") if rep % 2 == 0 else ("after", "before")):
                    r = cb.run(runners[b], plan, "--strategy", s, "--faults", "sigbus", "--mutators", str(mutators),
                               "--seed", str(rep + 1))["runs"][0]
                    assert r["verified"] and "trace" not in r
                    gc[(b, s)].append(r["gc_thread_s"])
    print(f"2. tracing off: this tree's runner against {rev}'s (no tracing code), {heap_size}, {repeat} repetitions "
          f"interleaved")
    print(f"  {'strategy':<8} {'GC ms before':>12} {'GC ms after':>11} {'after/before':>12} {'spread':>13}  "
          f"target <= 1.02x (noise)")
    met = True
    for s in STRATEGIES:
        before, after = gc[("before", s)], gc[("after", s)]
        ratio = paired(after, before)
        met &= ratio <= 1.02
        print(f"  {s:<8} {1e3 * statistics.median(before):12.1f} {1e3 * statistics.median(after):11.1f} "
              f"{ratio:11.3f}x {spread(after, before):>13}  {'met' if ratio <= 1.02 else 'MISSED'}")
    return met


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heap", default="256MiB")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--mutators", type=int, default=1)
    ap.add_argument("--baseline", metavar="REV", help="also compare tracing off with this commit's runner")
    args = ap.parse_args()
    try:  # checked before anything runs, by the collector's own validation
        compactor.HeapSpec(size=args.heap)
        make_config("copy", "sigbus", args.mutators)
    except ValueError as e:
        ap.error(str(e))
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    met = in_this_build(args.heap, args.repeat, args.mutators)
    if args.baseline:
        met &= against_baseline(args.baseline, args.heap, args.repeat, args.mutators)
    return 0 if met else 1  # a missed target is a failure of the run


if __name__ == "__main__":
    sys.exit(main())
