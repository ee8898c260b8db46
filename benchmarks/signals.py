"""Signals in the fault path, at volume: back-to-back collections in one process while every mutator receives a
signal `--hz` times a second (default SIGPROF at 1 kHz, a profiler's rate), cycling through every concurrent
strategy x sigbus/thread, with and without allocating mutators. Every collection must verify; a hang becomes a
WatchdogTimeout (watchdog 5 s) and counts as one; any other error counts as a corruption or a crash.

    python benchmarks/signals.py [--collections 500] [--signal sigprof|sigalrm|sigusr1] [--hz 1000] [--mutators 2]

Issue 22's target: 0 hangs and 0 corruptions over >= 500 collections with SIGPROF at 1 kHz per mutator. Exit 0 when
met, 1 otherwise, 2 for bad arguments. Run it from outside the checkout's root (there `compactor/` would shadow the
installed package).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import compactor
from compactor import HeapCorruption, WatchdogTimeout, uffd
from compactor.collector import make_config

STRATEGIES = ("copy", "move", "move-alloc", "hybrid")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collections", type=int, default=500)
    ap.add_argument("--signal", default="sigprof", choices=("sigprof", "sigalrm", "sigusr1"))
    ap.add_argument("--hz", type=float, default=1000.0, help="signals per second per mutator (default 1000)")
    ap.add_argument("--mutators", type=int, default=2)
    ap.add_argument("--heap", default="8MiB")
    args = ap.parse_args()
    if args.collections < 1:
        ap.error("--collections must be at least 1")
    try:  # every option checked before anything runs, by the collector's own validation
        compactor.HeapSpec(size=args.heap)
        make_config("copy", "sigbus", args.mutators, signal=args.signal, signal_hz=args.hz)
    except ValueError as e:
        ap.error(str(e))
    strategies = STRATEGIES if "move" in uffd.probe() else ("copy",)
    heap = compactor.Heap.generate(compactor.HeapSpec(size=args.heap, seed=21))
    plan = compactor.plan(heap)
    outcomes: Counter = Counter()
    totals: Counter = Counter()
    t0 = time.monotonic()
    for i in range(args.collections):
        strategy = strategies[i % len(strategies)]
        faults = ("sigbus", "thread")[(i // len(strategies)) % 2]
        try:
            r = compactor.collect(heap, strategy, faults=faults, mutators=args.mutators, plan=plan, seed=i,
                                  signal=args.signal, signal_hz=args.hz, pre_pause_ms=1, watchdog=5,
                                  alloc_rate=(64 << 20) if i % 3 == 0 else 0)
        except WatchdogTimeout as e:
            outcomes["hang"] += 1
            print(f"collection {i} ({strategy}/{faults}): hang: {e}", file=sys.stderr)
            continue
        except (HeapCorruption, OSError) as e:
            outcomes["corrupt or failed"] += 1
            print(f"collection {i} ({strategy}/{faults}): {type(e).__name__}: {e}", file=sys.stderr)
            continue
        outcomes["verified" if r.verified else "not verified"] += 1
        for k in ("signals_sent", "signals_handled", "signals_in_fault_wait", "signal_heap_reads",
                  "signal_heap_faults"):
            totals[k] += r.counters[k]
    seconds = time.monotonic() - t0
    print(f"{args.collections} collections in {seconds:.1f} s, {args.signal} at {args.hz:g} Hz to each of "
          f"{args.mutators} mutators: {outcomes['verified']} verified, {outcomes['hang']} hangs, "
          f"{outcomes['corrupt or failed'] + outcomes['not verified']} corrupt or failed")
    print("signals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0 if outcomes["verified"] == args.collections else 1


if __name__ == "__main__":
    sys.exit(main())
