"""Young against full collections on one generational heap (issue 23): every concurrent strategy, young and full
plans of the same heap, interleaved repetitions; the GC thread's time (the seed's metric) and what each collection
did by generation (pages mapped back by MOVE/COPY against pages compacted, cards, scanned and freed bytes).

    python benchmarks/young_collections.py [--heap 256MiB] [--old 0.8] [--young-survival 0.1] [--repeat 5]
                                           [--mutators 0,1] [--json F]

Targets (ratios inside one run): a young collection's GC-thread time at most 0.5x a full one's with COPY; every
collection verifies. The expectation to test, not to assume: MOVE's gain over COPY is larger in young collections
(old pages are mapped back without a copy). Run it from outside the checkout's root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import compactor
from compactor import uffd
from compactor.collector import make_config

STRATEGIES = ("copy", "move", "hybrid")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heap", default="256MiB")
    ap.add_argument("--old", type=float, default=0.8, help="old generation's share of the space (default 0.8)")
    ap.add_argument("--mid", type=float, default=0.05, help="mid generation's share (default 0.05)")
    ap.add_argument("--young-survival", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mutators", default="0,1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        spec = compactor.HeapSpec(size=args.heap, old_fraction=args.old, mid_fraction=args.mid,
                                  young_survival=args.young_survival, seed=args.seed)
        mutators = [int(m) for m in args.mutators.split(",")]
        for m in mutators:
            make_config("copy", "sigbus", m)  # the collector's own range check, before anything runs
    except ValueError as e:
        ap.error(str(e))
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    strategies = STRATEGIES if "move" in uffd.probe() else ("copy",)
    t0 = time.monotonic()
    heap = compactor.Heap.generate(spec)
    plans = {k: compactor.plan(heap, kind=k) for k in ("young", "full")}
    times: dict = {}
    gen: dict = {}
    for rep in range(args.repeat):
        order = [(k, m, s) for k in ("young", "full") for m in mutators for s in strategies]
        if rep % 2:
            order.reverse()
        for k, m, s in order:
            r = compactor.collect(heap, s, mutators=m, plan=plans[k], seed=rep + 1)  # a failed verification raises
            times.setdefault((k, m, s), []).append(r.gc_thread_seconds)
            gen[(k, m, s)] = r.generational
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"{args.heap}, old {args.old:.0%}, mid {args.mid:.0%}, young survival {args.young_survival:.0%}, SIGBUS, "
          f"{args.repeat} interleaved repetitions ({time.monotonic() - t0:.0f} s); GC-thread median ms")
    print(f"{'kind':6} {'mut':>3} {'strategy':8} {'GC ms':>8} {'vs copy':>8} {'vs full':>8} {'mapped back':>12} "
          f"{'compacted':>9} {'dirty cards':>11} {'scanned MiB':>11} {'freed MiB':>9}")
    rows = []
    for (k, m, s), t in sorted(med.items(), key=lambda x: (x[0][1], x[0][0] != "young", STRATEGIES.index(x[0][2]))):
        g = gen[(k, m, s)]
        vs_copy = t / med[(k, m, "copy")]
        vs_full = t / med[("full", m, s)]
        back = g["pages_mapped_back_move"] + g["pages_mapped_back_copy"]
        print(f"{k:6} {m:>3} {s:8} {t * 1e3:8.1f} {vs_copy:7.2f}x {vs_full:7.2f}x {back:>12} {g['pages_compacted']:>9} "
              f"{g['dirty_cards']:>11} {g['scanned_bytes'] / 2**20:11.1f} {g['freed_bytes'] / 2**20:9.1f}")
        rows.append({"kind": k, "mutators": m, "strategy": s, "gc_thread_s": times[(k, m, s)], "median_s": t,
                     "vs_copy": vs_copy, "vs_full": vs_full, "generational": g})
    ok = all(med[("young", m, "copy")] <= 0.5 * med[("full", m, "copy")] for m in mutators)
    for m in mutators:
        print(f"target (mutators {m}): young COPY {med[('young', m, 'copy')] / med[('full', m, 'copy')]:.2f}x full "
              f"COPY (<= 0.5x: {'met' if med[('young', m, 'copy')] <= 0.5 * med[('full', m, 'copy')] else 'NOT met'})"
              + (f"; MOVE/COPY young {med[('young', m, 'move')] / med[('young', m, 'copy')]:.2f}x, full "
                 f"{med[('full', m, 'move')] / med[('full', m, 'copy')]:.2f}x" if "move" in strategies else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"spec": spec.to_dict(), "repeat": args.repeat, "rows": rows}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
