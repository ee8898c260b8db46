"""The per-page install floor, measured inside the core (no interpreter in the loop), with plain C loops beside
the core's wrappers: the wrappers' overhead should stay within 10%.

    python benchmarks/install_floor.py [--pages N] [--repeat N]
"""

import argparse

from compactor import _native


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=16384, help="pages per measurement (default 64 MiB of 4 KiB)")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    floor = {m["name"]: m for m in _native.measure_install_floor(args.pages, args.repeat)}
    print(f"{'operation':<78} {'ns/page':>8}  (median of {args.repeat}, {args.pages} pages)")
    for m in floor.values():
        print(f"{m['description']:<78} {m['median_ns_per_page']:>8.0f}")
    for core, raw in (("copy_1", "copy_1_raw"), ("move_1", "move_1_raw")):
        if core in floor and raw in floor:
            over = floor[core]["median_ns_per_page"] / floor[raw]["median_ns_per_page"] - 1
            verdict = "within target" if over <= 0.10 else "OVER the 10% target"
            print(f"core wrapper overhead, {core} vs plain C loop: {over:+.1%} ({verdict})")


if __name__ == "__main__":
    main()
