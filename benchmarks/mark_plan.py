"""Heap generation, marking and planning throughput. Targets on the 2-core machine: a 1 GiB heap generated in
< 10 s; mark + plan of a 1 GiB heap at 50% live in <= 5 s.

    python benchmarks/mark_plan.py [--heap 1GiB] [--repeat 3]
"""

import argparse
import statistics
import time

import compactor
from compactor.marking import mark


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heap", default="1GiB")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    gen, mk, pl = [], [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        heap = compactor.Heap.generate(compactor.HeapSpec(size=args.heap, live_fraction=0.5, seed=i))
        t1 = time.perf_counter()
        m = mark(heap)
        t2 = time.perf_counter()
        compactor.plan(heap, marking=m)
        t3 = time.perf_counter()
        gen.append(t1 - t0)
        mk.append(t2 - t1)
        pl.append(t3 - t2)
        print(f"run {i + 1}: {heap.num_objects:,} objects; generate {t1 - t0:.2f} s, mark {t2 - t1:.2f} s, "
              f"plan {t3 - t2:.2f} s")
    g = statistics.median(gen)
    mp = statistics.median([a + b for a, b in zip(mk, pl)])
    print(f"median generate {g:.2f} s (target < 10 s: {'met' if g < 10 else 'MISSED'}); "
          f"median mark + plan {mp:.2f} s (target <= 5 s: {'met' if mp <= 5 else 'MISSED'})")


if __name__ == "__main__":
    main()
