"""Real heaps: HPROF parsing speed, building a big heap from a dump, and mark + plan per object against the
synthetic heap (ratios inside one run). Targets: parse test-dump.hprof in <= 0.1 s (>= 100 MB/s); a 256 MiB heap
from it in <= 10 s; mark + plan as fast per object as the synthetic heap.

    python benchmarks/hprof.py [--dump tests/data/hprof/test-dump.hprof] [--heap 256MiB] [--repeat 5]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import compactor
from compactor import hprof

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", default=str(ROOT / "tests" / "data" / "hprof" / "test-dump.hprof"))
    ap.add_argument("--heap", default="256MiB")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    size = os.path.getsize(args.dump)
    _, t_parse = timed(lambda: hprof.parse(args.dump), args.repeat)
    print(f"parse {args.dump}: {size / 1e6:.2f} MB in {t_parse * 1e3:.1f} ms = {size / t_parse / 1e6:.0f} MB/s "
          f"(targets <= 100 ms, >= 100 MB/s: {'met' if t_parse <= 0.1 and size / t_parse >= 100e6 else 'MISSED'})")
    one = compactor.Heap.from_hprof(args.dump)
    want = compactor.parse_size(args.heap)
    scale = max(1, want // one.used_end)
    big, t_build = timed(lambda: compactor.Heap.from_hprof(args.dump, scale=scale, live_fraction=0.5), 1)
    print(f"build {big.heap_size >> 20} MiB ({scale} copies, {big.num_objects:,} objects, live fraction 0.5): "
          f"{t_build:.2f} s "
          f"(target <= 10 s: {'met' if t_build <= 10 else 'MISSED'})")
    syn = compactor.Heap.generate(compactor.HeapSpec(size=big.heap_size, live_fraction=0.5, seed=1))
    per = {}
    for name, h in (("real", big), ("synthetic", syn)):
        _, t = timed(lambda h=h: compactor.plan(h), 3)
        per[name] = t / h.num_objects * 1e9
        print(f"mark + plan {name}: {t:.2f} s for {h.num_objects:,} objects = {per[name]:.0f} ns per object")
    ratio = per["real"] / per["synthetic"]
    print(f"real / synthetic per object = {ratio:.2f}x (target <= 1.0x, noise allowed ~10%): "
          f"{'met' if ratio <= 1.1 else 'MISSED'}")


if __name__ == "__main__":
    main()
