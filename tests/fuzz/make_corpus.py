"""Writes a seed corpus of small valid plan files (every garbage pattern, both page sizes) into DIR."""

import os
import sys

import compactor


def main(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    n = 0
    for garbage in ("uniform", "clustered", "dense-prefix"):
        for ps in (4096, 16384):
            for live in (0.0, 0.5, 1.0):
                heap = compactor.Heap.generate(compactor.HeapSpec(size=64 * 1024, live_fraction=live, garbage=garbage,
                                                                  roots=4, seed=n), page_size=ps)
                compactor.plan(heap, page_size=ps).save(os.path.join(directory, f"seed-{n}.plan"))
                n += 1


if __name__ == "__main__":
    main(sys.argv[1])
