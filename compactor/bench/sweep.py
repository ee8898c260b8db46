"""`python -m compactor.bench sweep`: where MOVE wins. A grid over live fraction, mutators, batch and strategy,
interleaved (every cell of one heap once per repetition, then again), with GC-thread time against COPY in the same
cell and TLB shootdowns per 1000 installed pages. JSON, CSV and a heatmap PNG/SVG."""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from itertools import product
from typing import Any, Callable, Dict, List, Optional

from rich.console import Console
from rich.table import Table

from .. import _native
from ..collector import STRATEGIES, collect
from ..errors import HeapCorruption
from ..heap import Heap, HeapSpec
from ..planning import plan as make_plan
from . import progress
from .args import choices, fraction, int_in, list_of, plot_path, size
from .env import check_memory, check_usable, host_environment, memory_available
from .output import atomic_write
from .output import write_sweep_csv as write_csv
from .schema import SWEEP_SCHEMA_ID
from .stats import load_measures
from .types import BenchError

DEFAULT: Dict[str, Any] = {"heap": 64 << 20, "live": (0.1, 0.3, 0.5, 0.7, 0.9), "mutators": (0, 1, 2, 4),
                           "batch": (1, 16, 64, 512), "strategies": ("copy", "move", "hybrid"), "repeat": 3}
QUICK: Dict[str, Any] = {"heap": 16 << 20, "live": (0.25, 0.5, 0.75), "mutators": (0, 2), "batch": (1, 64, 512),
                         "strategies": ("copy", "move", "hybrid"), "repeat": 2}


def run_sweep(heap_bytes: int, live: tuple, mutators: tuple, batch: tuple, strategies: tuple, repeat: int,
              faults: str = "sigbus", seed: int = 1, options: Optional[dict] = None,
              progress: Optional[Callable[[str, int, int], None]] = None) -> dict:
    """Runs the grid and returns the sweep report. Raises BenchError (status 3) when a heap fails verification."""
    started = time.time()
    env = host_environment()
    check_usable(env)
    check_memory(heap_bytes, memory_available())
    tick = progress or (lambda *_: None)
    cells = list(product(mutators, batch, strategies))
    total = len(live) * repeat * len(cells)
    raws: Dict[tuple, List[dict]] = {}
    done = 0
    for f in live:
        heap = Heap.generate(HeapSpec(size=heap_bytes, live_fraction=f, seed=seed))
        plan = make_plan(heap)
        for rep in range(repeat):
            for m, b, s in cells:
                tick(f"live {f:.2f}: {s} batch {b}, {m} mutators (repetition {rep + 1}/{repeat})", done, total)
                try:
                    r = collect(heap, s, faults=faults, mutators=m, batch=b, seed=seed + rep, plan=plan,
                                **(options or {}))
                except HeapCorruption as e:
                    raise BenchError(f"sweep cell live={f} mutators={m} batch={b} {s}: verification failed: {e}",
                                     3) from e
                raws.setdefault((f, m, b, s), []).append(r.raw)
                done += 1
    tick("done", total, total)
    rows = []
    for (f, m, b, s), reps in raws.items():
        gc = [r["gc_thread_s"] for r in reps]
        base = [r["gc_thread_s"] for r in raws.get((f, m, b, "copy"), [])]
        ratios = [g / c for g, c in zip(gc, base)] if base else []
        row = {"live_fraction": f, "mutators": m, "batch": b, "strategy": s, "gc_thread_s": gc,
               "median": statistics.median(gc), "ratio_vs_copy": ratios,
               "ratio_vs_copy_median": statistics.median(ratios) if ratios else None,
               "verified": all(r["verified"] for r in reps), "pages": reps[0]["pages"]["total"]}
        row.update(load_measures(reps))
        rows.append(row)
    report = {"schema": SWEEP_SCHEMA_ID, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "environment": env,
              "config": {"heap_bytes": heap_bytes, "live": list(live), "mutators": list(mutators), "batch": list(batch),
                         "strategies": list(strategies), "repeat": repeat, "faults": faults, "seed": seed,
                         "options": dict(options or {}), "interleaved": True},
              "cells": rows, "elapsed_s": time.time() - started}
    report["hybrid_vs_best"] = hybrid_vs_best(rows)
    return report


def hybrid_vs_best(rows: List[dict]) -> Optional[dict]:
    """Per cell, hybrid's median time against min(copy, move) of the same cell; the worst cell and the ratio of
    hybrid's to move's shootdowns per 1000 pages where mutators ran."""
    by = {(r["live_fraction"], r["mutators"], r["batch"], r["strategy"]): r for r in rows}
    worst, shoot = None, []
    for (f, m, b, s), r in by.items():
        if s != "hybrid" or (f, m, b, "copy") not in by or (f, m, b, "move") not in by:
            continue
        best = min(by[(f, m, b, "copy")]["median"], by[(f, m, b, "move")]["median"])
        ratio = r["median"] / best
        if worst is None or ratio > worst["ratio"]:
            worst = {"live_fraction": f, "mutators": m, "batch": b, "ratio": ratio}
        mv = by[(f, m, b, "move")]["shootdowns_per_1000_pages"]
        if m and mv and r["shootdowns_per_1000_pages"] is not None:
            shoot.append(r["shootdowns_per_1000_pages"] / mv)
    if worst is None:
        return None
    return {"worst_cell": worst, "within_5_percent_everywhere": worst["ratio"] <= 1.05,
            "shootdown_ratio_vs_move_median": statistics.median(shoot) if shoot else None}


def write_heatmap(report: dict, path: str) -> None:
    """Rows: GC time vs COPY for each non-COPY strategy, then shootdowns per 1000 pages for every strategy;
    columns: mutator counts; each panel is live fraction (y) by batch (x), annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cfg = report["config"]
    live, muts, batches, strats = cfg["live"], cfg["mutators"], cfg["batch"], cfg["strategies"]
    by = {(r["live_fraction"], r["mutators"], r["batch"], r["strategy"]): r for r in report["cells"]}
    panels = [("time", s) for s in strats if s != "copy"] + [("tlb", s) for s in strats]
    fig, axes = plt.subplots(len(panels), len(muts), figsize=(2.6 * len(muts) + 1, 2.2 * len(panels) + 0.8),
                             squeeze=False)
    for i, (kind, s) in enumerate(panels):
        for j, m in enumerate(muts):
            ax = axes[i][j]
            grid = np.full((len(live), len(batches)), np.nan)
            for a, f in enumerate(live):
                for b, bt in enumerate(batches):
                    r = by.get((f, m, bt, s))
                    if r is None:
                        continue
                    v = r["ratio_vs_copy_median"] if kind == "time" else r["shootdowns_per_1000_pages"]
                    grid[a, b] = np.nan if v is None else v
            if kind == "time":
                ax.imshow(grid, cmap="RdBu_r", vmin=0.4, vmax=1.6, aspect="auto", origin="lower")
            else:
                ax.imshow(np.log10(1 + grid), cmap="magma_r", vmin=0, vmax=3, aspect="auto", origin="lower")
            for a in range(len(live)):
                for b in range(len(batches)):
                    if not np.isnan(grid[a, b]):
                        dark = abs(grid[a, b] - 1) > 0.4 if kind == "time" else grid[a, b] > 100
                        ax.text(b, a, f"{grid[a, b]:.2f}" if kind == "time" else f"{grid[a, b]:.0f}",
                                ha="center", va="center", fontsize=7, color="white" if dark else "black")
            ax.set_xticks(range(len(batches)), [str(b) for b in batches], fontsize=7)
            ax.set_yticks(range(len(live)), [f"{f:g}" for f in live], fontsize=7)
            if i == len(panels) - 1:
                ax.set_xlabel("batch (pages)", fontsize=8)
            if j == 0:
                ax.set_ylabel(("time vs copy: " if kind == "time" else "TLB/1000 pages: ") + s + "\nlive", fontsize=8)
            if i == 0:
                ax.set_title(f"{m} mutators", fontsize=9)
    env = report["environment"]
    fig.suptitle(f"GC-thread time vs COPY (blue: faster),\nTLB shootdowns per 1000 pages\n"
                 f"Linux {env['kernel']} {env['arch']}, {env['cpus']} CPUs, {cfg['heap_bytes'] >> 20} MiB heap, "
                 f"{cfg['faults']}, medians of {cfg['repeat']}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg" if path.lower().endswith(".svg") else "png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def render(report: dict, console: Console) -> None:
    cfg = report["config"]
    t = Table(title=f"Sweep: GC-thread ms (vs copy) and TLB shootdowns per 1000 pages; {cfg['heap_bytes'] >> 20} MiB, "
                    f"{cfg['faults']}, medians of {cfg['repeat']}", title_justify="left")
    for c in ("live", "mut.", "batch") + tuple(cfg["strategies"]):
        t.add_column(c, justify="right")
    by = {(r["live_fraction"], r["mutators"], r["batch"], r["strategy"]): r for r in report["cells"]}
    for f, m, b in product(cfg["live"], cfg["mutators"], cfg["batch"]):
        cells = []
        for s in cfg["strategies"]:
            r = by.get((f, m, b, s))
            if r is None:
                cells.append("-")
                continue
            ratio = "" if s == "copy" or r["ratio_vs_copy_median"] is None else f" ({r['ratio_vs_copy_median']:.2f}x)"
            k = r["shootdowns_per_1000_pages"]
            cells.append(f"{1e3 * r['median']:.1f}{ratio} · {'-' if k is None else f'{k:.0f}'}")
        t.add_row(f"{f:.2f}", str(m), str(b), *cells)
    console.print(t)
    h = report.get("hybrid_vs_best")
    if h:
        w = h["worst_cell"]
        sr = h["shootdown_ratio_vs_move_median"]
        console.print(f"hybrid against min(copy, move): worst cell {w['ratio']:.2f}x (live {w['live_fraction']}, "
                      f"{w['mutators']} mutators, batch {w['batch']}); hybrid's shootdowns per page are "
                      f"{'-' if sr is None else f'{sr:.3f}x'} move's where mutators ran (median over cells)")


PROG = "python -m compactor.bench sweep"
DESCRIPTION = ("Where MOVE wins: GC-thread time against COPY and TLB shootdowns over a grid of live fraction x "
               "mutators x batch x strategy, interleaved.")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The sweep's options (on its own parser or the `sweep` subparser of python -m compactor.bench)."""
    ap.add_argument("--quick", action="store_true", help="a small grid (16 MiB; about a minute or less)")
    ap.add_argument("--heap", type=size)
    ap.add_argument("--live", type=list_of(fraction, "live fraction"))
    ap.add_argument("--mutators", type=list_of(int_in(0, _native.MAX_MUTATORS), "mutator"))
    ap.add_argument("--batch", type=list_of(int_in(1, _native.MAX_BATCH), "batch"))
    ap.add_argument("--strategies", type=choices(tuple(s for s in STRATEGIES if s != "stw"), "strategy"))
    ap.add_argument("--faults", choices=("sigbus", "thread"), default="sigbus")
    ap.add_argument("--repeat", type=int_in(1, 100))
    ap.add_argument("--seed", type=int_in(0, 2**63 - 1), default=1)
    ap.add_argument("--json", metavar="PATH", help="the sweep report ('-' = stdout, nothing else printed there)")
    ap.add_argument("--csv", metavar="PATH")
    ap.add_argument("--plot", metavar="PATH", help="heatmap, .png or .svg")
    ap.add_argument("--quiet", action="store_true")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    add_arguments(ap)
    return run_command(ap, ap.parse_args(argv))


def run_command(ap: argparse.ArgumentParser, args) -> int:
    """The sweep for parsed arguments; usage errors through `ap`."""
    plot_path(ap, args.plot)
    grid = dict(QUICK if args.quick else DEFAULT)
    for k in ("heap", "live", "mutators", "batch", "strategies", "repeat"):
        if getattr(args, k):
            grid[k] = getattr(args, k)
    if "copy" not in grid["strategies"]:
        grid["strategies"] = ("copy",) + tuple(grid["strategies"])  # the reference of every ratio
    err = Console(stderr=True)
    try:
        report = progress.run(lambda tick: run_sweep(grid["heap"], grid["live"], grid["mutators"], grid["batch"],
                                                     grid["strategies"], grid["repeat"], args.faults, args.seed,
                                                     progress=tick), args.quiet, err)
    except BenchError as e:
        err.print(f"[red]error[/red]: {e}")
        return e.status
    text = json.dumps(report, indent=2)
    if args.json == "-":
        sys.stdout.write(text + "\n")
    else:
        if args.json:
            atomic_write(args.json, (text + "\n").encode())
        render(report, Console(width=200))
    if args.csv:
        write_csv(report, args.csv)
    if args.plot:
        write_heatmap(report, args.plot)
    return 0
