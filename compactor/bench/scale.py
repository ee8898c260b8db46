"""How preparation and collection costs grow with the heap (`python -m compactor.bench scale`): for each heap size,
the time to generate, mark + plan, reset and collect (copy, move, hybrid; no mutators), the GC thread's time per
to-space page, and collect()'s wall time against its GC-thread time, with the peak RSS. Memory is checked up front.

It uses only the public API and no other bench module but env and types, so that benchmarks/scale.py can run this
file against an older build's installed package for a before/after table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import List, Optional

import compactor

try:
    from compactor.bench.args import MATPLOTLIB_MISSING, matplotlib_installed, unwritable_output
except ImportError:  # an older build's package, measuring with this file by path (benchmarks/scale.py)
    MATPLOTLIB_MISSING, matplotlib_installed, unwritable_output = "", None, None  # type: ignore[assignment]
from compactor.bench.env import check_memory, memory_available  # absolute: this file also runs by path
from compactor.bench.types import BenchError
from compactor.heap import Heap, HeapSpec, parse_size
from compactor.layout import MAX_HEAP_SIZE

STRATEGIES = ("copy", "move", "hybrid")


def measure(size: int) -> dict:
    row: dict = {"heap_bytes": size}
    t0 = time.perf_counter()
    heap = Heap.generate(HeapSpec(size=size, seed=1))
    t1 = time.perf_counter()
    p = compactor.plan(heap)
    t2 = time.perf_counter()
    heap.reset()
    t3 = time.perf_counter()
    heap.pristine_digest()
    t4 = time.perf_counter()
    row.update(objects=heap.num_objects, to_space_pages=p.num_to_pages, generate_s=t1 - t0, mark_plan_s=t2 - t1,
               first_reset_s=t3 - t2, pristine_digest_s=t4 - t3)
    for s in STRATEGIES:
        t5 = time.perf_counter()
        heap.reset()
        t6 = time.perf_counter()
        r = compactor.collect(heap, s, plan=p)
        t7 = time.perf_counter()
        row[s] = {"gc_thread_s": r.gc_thread_seconds, "ns_per_page": r.gc_thread_seconds * 1e9 / max(1, p.num_to_pages),
                  "reset_s": t6 - t5, "collect_s": t7 - t6, "wall_s": t7 - t5,
                  "wall_over_gc_thread": (t7 - t5) / r.gc_thread_seconds}
    row["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return row


DESCRIPTION = __doc__.splitlines()[0]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sizes", default="64MiB,256MiB,1GiB",
                    help="heap sizes, comma-separated (default 64MiB,256MiB,1GiB; up to the 32-bit reference limit "
                         "where memory allows)")
    ap.add_argument("--json", help="write the rows as JSON here")
    ap.add_argument("--plot", help="write a PNG of the per-page GC time, preparation and wall time per heap size")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compactor.bench scale", description=DESCRIPTION)
    add_arguments(ap)
    return run_command(ap.parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    if args.plot and not args.plot.lower().endswith(".png"):
        print("python -m compactor.bench scale: error: --plot takes a .png path", file=sys.stderr)
        return 2
    problem = unwritable_output(args) if unwritable_output is not None else None
    if problem:
        print(f"python -m compactor.bench scale: error: {problem}", file=sys.stderr)
        return 2
    if args.plot and matplotlib_installed is not None and not matplotlib_installed():
        print(f"python -m compactor.bench scale: error: --plot {MATPLOTLIB_MISSING}", file=sys.stderr)
        return 2
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
        for size in sizes:
            if size > MAX_HEAP_SIZE:
                raise ValueError(f"--sizes: {size >> 20} MiB exceeds the 32-bit reference limit "
                                 f"({MAX_HEAP_SIZE >> 20} MiB): leave it out")
    except ValueError as e:
        print(f"python -m compactor.bench scale: error: {e}", file=sys.stderr)
        return 2
    try:
        check_memory(max(sizes), memory_available())  # the bench's own estimate, checked before anything runs
    except BenchError as e:
        print(f"python -m compactor.bench scale: error: {e}", file=sys.stderr)
        return 2
    rows = []
    print(f"{'heap':>8} {'objects':>10} {'generate':>9} {'mark+plan':>9} {'reset':>7} " +
          " ".join(f"{s + ' gc':>9} {s + ' ns/pg':>11} {s + ' wall/gc':>12}" for s in STRATEGIES) + f" {'peak RSS':>9}")
    for size in sizes:
        r = measure(size)
        rows.append(r)
        print(f"{size >> 20:>5}MiB {r['objects']:>10,} {r['generate_s']:>8.2f}s {r['mark_plan_s']:>8.2f}s "
              f"{r['copy']['reset_s']:>6.2f}s " +
              " ".join(f"{1e3 * r[s]['gc_thread_s']:>7.0f}ms {r[s]['ns_per_page']:>11.0f} "
                       f"{r[s]['wall_over_gc_thread']:>11.1f}x" for s in STRATEGIES) +
              f" {r['peak_rss_bytes'] / size:>8.2f}x", flush=True)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:  # atomic: no partial file
            json.dump(rows, f, indent=1)
        os.replace(tmp, args.json)
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        mib = [r["heap_bytes"] >> 20 for r in rows]
        fig, ax = plt.subplots(1, 3, figsize=(13, 4))
        for s in STRATEGIES:
            ax[0].plot(mib, [r[s]["ns_per_page"] for r in rows], "o-", label=s)
            ax[2].plot(mib, [r[s]["wall_s"] for r in rows], "o-", label=f"{s} wall")
        ax[1].plot(mib, [r["generate_s"] for r in rows], "o-", label="generate")
        ax[1].plot(mib, [r["mark_plan_s"] for r in rows], "o-", label="mark + plan")
        ax[1].plot(mib, [r["copy"]["reset_s"] for r in rows], "o-", label="reset")
        for a, t in zip(ax, ("GC thread ns per to-space page", "preparation (s)", "collect() + reset wall (s)")):
            a.set_xscale("log", base=2)
            a.set_xlabel("heap (MiB)")
            a.set_title(t)
            a.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
