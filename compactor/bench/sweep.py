"""`python -m compactor.bench sweep`: where MOVE wins. A grid over live fraction, mutators, batch, mutator profile
(what the app's threads do: compactor.profiles) and strategy, interleaved (every cell of one heap once per
repetition, then again), with GC-thread time against COPY in the same cell, TLB shootdowns per 1000 installed pages
and the share of pages mutators resolved; the crossover (compactor.bench.crossover) names the mutators' fault rate
above which MOVE stops beating COPY. The grids are compactor.bench.grid's. JSON, CSV and a heatmap PNG/SVG."""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from typing import Any, Callable, Dict, List, Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import _native
from .. import profiles as _profiles
from ..collector import STRATEGIES, make_config
from ..trace import DEFAULT_EVENTS, TraceWriter, collection_name
from . import grid as _grid
from . import progress
from .args import (
    add_cluster_arguments,
    add_mutator_flags,
    check_cluster_arguments,
    check_output_paths,
    choices,
    fraction,
    int_in,
    list_of,
    mutator_flags,
    plot_path,
    profile_list,
    size,
)
from .cell import batch_executors, cell_heap, cell_rows, run_cell_repetition
from .crossover import crossover, points
from .env import check_memory, check_usable, host_environment, memory_available
from .generational import GENERATION_DEFAULTS
from .machines import by_kernel, machine_label, merge_sweeps, render_side_by_side, retried_line
from .output import atomic_write, emit_report
from .output import write_sweep_csv as write_csv
from .report import move_kernel_line
from .schema import SWEEP_SCHEMA_ID
from .types import BenchError
from .young_sweep import old_share_summary, render_young, run_young_cells

DEFAULT, QUICK, FULL = _grid.DEFAULT, _grid.QUICK, _grid.FULL


def run_sweep(heap_bytes: int, planes: List[dict], strategies: tuple, repeat: int, faults: str = "sigbus",
              seed: int = 1, options: Optional[dict] = None,
              progress: Optional[Callable[[str, int, int], None]] = None, grid_name: str = "custom",
              trace: Optional[TraceWriter] = None) -> dict:
    """Runs the grid (planes of axes: compactor.bench.grid) and returns the sweep report. `options` (collect()
    names) override every profile's. With `trace`, every collection's events go there (a process track each).
    Raises BenchError (status 3) when a heap fails verification."""
    started = time.time()
    env = host_environment()
    check_usable(env)
    check_memory(heap_bytes, memory_available())
    tick = progress or (lambda *_: None)
    options = dict(options or {})
    grid_cells = _grid.cells(planes)
    lives = _grid.union(planes, "live")
    total = repeat * len(grid_cells) * len(strategies)
    raws: Dict[tuple, Dict[str, List[dict]]] = {}
    done = [0]
    for f in lives:
        heap, plan = cell_heap(heap_bytes, f, seed)
        here = [c for c in grid_cells if c[0] == f]
        with batch_executors((c[2] for c in here), seed, options, heap, plan,
                             trace_events=DEFAULT_EVENTS if trace is not None else 0) as executors:
            for rep in range(repeat):
                for c in here:
                    def before(s, c=c, rep=rep):
                        tick(f"live {c[0]:.2f}: {s} batch {c[2]}, {c[1]} mutators {c[3]} (repetition {rep + 1}/"
                             f"{repeat})", done[0], total)
                        done[0] += 1

                    for s, raw in run_cell_repetition(executors[c[2]], c, strategies, faults, rep, before).items():
                        events = raw.pop("trace", None)
                        if trace is not None and events:
                            trace.add(collection_name(raw, f"{c[3]} batch {c[2]} live {c[0]:.2f} #{rep + 1}"), events)
                        raws.setdefault(c, {}).setdefault(s, []).append(raw)
    tick("done", total, total)
    label = machine_label(env)
    rows = [dict(row, ran_on=label) for c, by_s in raws.items() for row in cell_rows(c, by_s)]
    return sweep_report(rows, {label: env}, heap_bytes, planes, strategies, repeat, faults, seed, options, grid_name,
                        started)


def run_young_sweep(heap_bytes: int, planes: List[dict], strategies: tuple, repeat: int, faults: str = "sigbus",
                    seed: int = 1, options: Optional[dict] = None,
                    progress: Optional[Callable[[str, int, int], None]] = None, grid_name: str = "young",
                    trace: Optional[TraceWriter] = None, olds: tuple = _grid.YOUNG["old"]) -> dict:
    """The young sweep (compactor.bench.young_sweep): every old share of `olds` with the one plane's cells; the
    sweep report, its config naming the collection ("gc": "young") and the shares, its "old_share" summary."""
    started = time.time()
    rows, machines, made = run_young_cells(heap_bytes, olds, planes[0], strategies, repeat, faults, seed, options,
                                           progress, trace)
    report = sweep_report(rows, machines, heap_bytes, [{k: v for k, v in p.items() if k != "old_fraction"}
                                                       for p in made], strategies, repeat, faults, seed,
                          dict(options or {}), grid_name, started)
    report["config"].update(gc="young", old_fractions=list(olds),
                            young_plane={k: list(v) for k, v in planes[0].items()},
                            generations={k: v for k, v in GENERATION_DEFAULTS.items() if k != "old_fraction"})
    report["old_share"] = old_share_summary(rows)
    return report


def sweep_report(rows: List[dict], machines: Dict[str, dict], heap_bytes: int, planes: List[dict],
                 strategies: tuple, repeat: int, faults: str, seed: int, options: dict, grid_name: str,
                 started: float, retried: Optional[List[dict]] = None, failed: Optional[List[dict]] = None,
                 cluster: Optional[str] = None) -> dict:
    """The sweep report of measured rows (each tagged with its machine, a key of `machines`: its environment),
    local or from a cluster; `environment` is the first machine's. `retried` and `failed` name the cells a
    cluster ran again after a worker died and those that failed on every attempt."""
    env = next(iter(machines.values()))
    report = {"schema": SWEEP_SCHEMA_ID, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "environment": env,
              "config": {"grid": grid_name, "heap_bytes": heap_bytes,
                         "planes": [{k: list(v) for k, v in pl.items()} for pl in planes],
                         **{k: _grid.union(planes, k) for k in ("live", "mutators", "batch", "profiles")},
                         "strategies": list(strategies), "repeat": repeat, "faults": faults, "seed": seed,
                         "options": options,
                         "profile_options": {p: _profiles.options_for(p, 1, options)
                                             for p in _grid.union(planes, "profiles")},
                         "interleaved": True, "cluster": cluster},
              "cells": rows, "machines": machines, "retried": retried or [], "failed": failed or [],
              "elapsed_s": time.time() - started}
    report["hybrid_vs_best"] = hybrid_vs_best(rows)
    report["crossover"] = sweep_crossover(rows)
    report["by_kernel"] = by_kernel(report)
    return report


def merged_report(reports: List[dict], names: List[str]) -> dict:
    """Sweep reports (of one grid's settings, from several machines) merged into one sweep report: every cell
    tagged with its machine, the machines' environments, by_kernel when their kernels differ."""
    merged = merge_sweeps(reports, names)
    cfg = merged["config"]
    return sweep_report(merged["cells"], merged["machines"], cfg["heap_bytes"], cfg["planes"], tuple(cfg["strategies"]),
                        cfg["repeat"], cfg["faults"], cfg.get("seed", 1), cfg.get("options") or {}, cfg["grid"],
                        time.time(), [r for rep in reports for r in rep.get("retried") or []],
                        [r for rep in reports for r in rep.get("failed") or []], cfg.get("cluster"))


def sweep_crossover(rows: List[dict]) -> dict:
    """Per (live, mutators, batch) cell run with at least two profiles (mutators > 0): the crossover over its
    profiles; `headline` is the group with the most profiles (fewest mutators first)."""
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        if r["mutators"]:
            groups.setdefault((r["live_fraction"], r["mutators"], r["batch"]), []).append(r)
    out = []
    for (f, m, b), rs in groups.items():
        profs = {r["profile"] for r in rs}
        if len(profs) < 2:
            continue
        c = crossover(points(rs))
        out.append({"live_fraction": f, "mutators": m, "batch": b, "profiles": len(profs), **c})
    out.sort(key=lambda g: (-g["profiles"], g["mutators"], g["live_fraction"], g["batch"]))
    return {"groups": out, "headline": out[0] if out else None}


def hybrid_vs_best(rows: List[dict]) -> Optional[dict]:
    """Per cell, hybrid's median time against min(copy, move) of the same cell; the worst cell and the ratio of
    hybrid's to move's shootdowns per 1000 pages where mutators ran."""
    by = {(r["live_fraction"], r["mutators"], r["batch"], r.get("profile", "stress"), r["strategy"]): r
          for r in rows}
    worst, shoot = None, []
    for (f, m, b, p, s), r in by.items():
        if s != "hybrid" or (f, m, b, p, "copy") not in by or (f, m, b, p, "move") not in by:
            continue
        best = min(by[(f, m, b, p, "copy")]["median"], by[(f, m, b, p, "move")]["median"])
        ratio = r["median"] / best
        if worst is None or ratio > worst["ratio"]:
            worst = {"live_fraction": f, "mutators": m, "batch": b, "profile": p, "ratio": ratio}
        mv = by[(f, m, b, p, "move")]["shootdowns_per_1000_pages"]
        if m and mv and r["shootdowns_per_1000_pages"] is not None:
            shoot.append(r["shootdowns_per_1000_pages"] / mv)
    if worst is None:
        return None
    return {"worst_cell": worst, "within_5_percent_everywhere": worst["ratio"] <= 1.05,
            "shootdown_ratio_vs_move_median": statistics.median(shoot) if shoot else None}


def _heatmap_profile(report: dict) -> str:
    profs = [r.get("profile", "stress") for r in report["cells"]]
    return "stress" if "stress" in profs else (profs[0] if profs else "stress")


def _crossover_panel(ax, group: Optional[dict]) -> None:
    """The best MOVE-based strategy's time against COPY per profile, over the mutators' pages per ms."""
    from matplotlib.ticker import NullFormatter  # matplotlib is optional: imported where a plot is drawn

    if not group or not group.get("points"):
        ax.axis("off")
        return
    pts = group["points"]
    xs = [max(p["pages_per_ms"], 1e-3) for p in pts]
    ax.scatter(xs, [p["ratio"] for p in pts], s=12, c=["#48c" if p["ratio"] < 1 else "#c44" for p in pts])
    for x, p in zip(xs, pts):
        ax.annotate(p["profile"], (x, p["ratio"]), fontsize=5, xytext=(2, 2), textcoords="offset points")
    ax.axhline(1.0, color="#888", lw=0.8)
    if group.get("threshold_pages_per_ms"):
        ax.axvline(group["threshold_pages_per_ms"], color="#c84", lw=0.8, ls="--")
    ax.set_xscale("log")
    # Minor ticks unlabelled: within one decade matplotlib labels them all ("2x10^1 3x10^1 ..."), on top of
    # each other at this size.
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("pages mutators resolved per ms", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_title(f"live {group['live_fraction']:g}, batch {group['batch']}: "
                 + ("crossover %.2g pages/ms" % group["threshold_pages_per_ms"]
                    if group.get("threshold_pages_per_ms") else "not crossed"), fontsize=7)


def write_heatmap(report: dict, path: str) -> List[str]:
    """The heatmap (write_grid_heatmap); with cells from several kernels (by_kernel), one file per kernel group:
    PATH for group [1], PATH's stem + "-N" for group [N]. Returns the files written."""
    section = report.get("by_kernel")
    if not section:
        write_grid_heatmap(report, path)
        return [path]
    stem, ext = os.path.splitext(path)
    machines = report.get("machines") or {}
    written = []
    for i, g in enumerate(section["groups"]):
        cells = [c for c in report["cells"] if c.get("ran_on") in g["machines"]]
        env = machines.get(g["machines"][0], report["environment"])
        out = path if i == 0 else f"{stem}-{i + 1}{ext}"
        write_grid_heatmap(dict(report, cells=cells, environment=env, crossover=sweep_crossover(cells)), out)
        written.append(out)
    return written


def write_grid_heatmap(report: dict, path: str) -> None:
    """Rows: GC time vs COPY for each non-COPY strategy, then shootdowns per 1000 pages for every strategy, for the
    stress profile's cells; columns: mutator counts; each panel is live fraction (y) by batch (x), annotated. A last
    row, when profiles were swept: the best MOVE-based strategy's time against COPY over the mutators' fault rate,
    one point per profile, with the crossover."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cfg = report["config"]
    shown = _heatmap_profile(report)
    rows = [r for r in report["cells"] if r.get("profile", "stress") == shown or not r["mutators"]]
    live = sorted({r["live_fraction"] for r in rows})
    batches = sorted({r["batch"] for r in rows})
    muts, strats = sorted(cfg["mutators"]), cfg["strategies"]
    by = {(r["live_fraction"], r["mutators"], r["batch"], r["strategy"]): r for r in rows}
    panels = [("time", s) for s in strats if s != "copy"] + [("tlb", s) for s in strats]
    groups = (report.get("crossover") or {}).get("groups") or []
    if groups:
        panels.append(("cross", ""))
    fig, axes = plt.subplots(len(panels), len(muts), figsize=(2.6 * len(muts) + 1, 2.2 * len(panels) + 0.8),
                             squeeze=False)
    for i, (kind, s) in enumerate(panels):
        for j, m in enumerate(muts):
            ax = axes[i][j]
            if kind == "cross":
                _crossover_panel(ax, next((g for g in groups if g["mutators"] == m), None))
                continue
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
            if i == len(panels) - 1 or (i == len(panels) - 2 and panels[-1][0] == "cross"):
                ax.set_xlabel("batch (pages)", fontsize=8)
            if j == 0:
                ax.set_ylabel(("time vs copy: " if kind == "time" else "TLB/1000 pages: ") + s + "\nlive", fontsize=8)
            if i == 0:
                ax.set_title(f"{m} mutators", fontsize=9)
    env = report["environment"]
    fig.suptitle(f"GC-thread time vs COPY (blue: faster),\nTLB shootdowns per 1000 pages ({shown} mutators)\n"
                 f"Linux {env['kernel']} {env['arch']}, {env['cpus']} CPUs, {cfg['heap_bytes'] >> 20} MiB heap, "
                 f"{cfg['faults']}, medians of {cfg['repeat']}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg" if path.lower().endswith(".svg") else "png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def _cell_text(r: Optional[dict], strategy: str) -> str:
    if r is None:
        return "-"
    ratio = "" if strategy == "copy" or r["ratio_vs_copy_median"] is None else f" ({r['ratio_vs_copy_median']:.2f}x)"
    k = r["shootdowns_per_1000_pages"]
    share = (r.get("mutator_view") or {}).get("pages_resolved_share") if r["mutators"] else None
    return (f"{1e3 * r['median']:.1f}{ratio} · {'-' if k is None else f'{k:.0f}'}"
            + ("" if share is None else f" · {share:.0%}"))


def render(report: dict, console: Console) -> None:
    cfg = report["config"]
    line = move_kernel_line(report["environment"])
    if line:
        console.print(line)
    t = Table(title=f"Sweep: GC-thread ms (vs copy) · TLB shootdowns per 1000 pages · share of pages mutators "
                    f"resolved; {cfg['heap_bytes'] >> 20} MiB, {cfg['faults']}, medians of {cfg['repeat']}",
              title_justify="left")
    several = len(report.get("machines") or {}) > 1
    for c in ("live", "mut.", "batch", "profile") + tuple(cfg["strategies"]) + (("machine",) if several else ()):
        t.add_column(c, justify="left" if c in ("profile", "machine") else "right")
    by = {(r["live_fraction"], r["mutators"], r["batch"], r.get("profile", "stress"), r["strategy"]): r
          for r in report["cells"]}
    planes = cfg.get("planes") or [{"live": cfg["live"], "mutators": cfg["mutators"], "batch": cfg["batch"],
                                    "profiles": cfg.get("profiles") or ["stress"]}]
    for f, m, b, p in _grid.cells(planes):
        where = next((by[(f, m, b, p, s)].get("ran_on") or "" for s in cfg["strategies"] if (f, m, b, p, s) in by),
                     "-")
        t.add_row(f"{f:.2f}", str(m), str(b), p if m else "-", *(_cell_text(by.get((f, m, b, p, s)), s)
                                                                  for s in cfg["strategies"]),
                  *((where,) if several else ()))
    console.print(t)
    render_fleet(report, console)
    h = report.get("hybrid_vs_best")
    if h:
        w = h["worst_cell"]
        sr = h["shootdown_ratio_vs_move_median"]
        console.print(f"hybrid against min(copy, move): worst cell {w['ratio']:.2f}x (live {w['live_fraction']}, "
                      f"{w['mutators']} mutators, batch {w['batch']}, {w.get('profile', 'stress')}); hybrid's "
                      f"shootdowns per page are {'-' if sr is None else f'{sr:.3f}x'} move's where mutators ran "
                      "(median over cells)")
    render_crossover(report.get("crossover"), console)


def render_fleet(report: dict, console: Console) -> None:
    """On a cluster: its machines (kernel, CPU, page size, cells), the cells retried after a worker died, the cells
    that failed, and with several kernels the same grid per kernel side by side."""
    cluster = report["config"].get("cluster")
    if not cluster and len(report.get("machines") or {}) < 2:
        return
    console.print(f"cluster {cluster}:" if cluster else "machines:")
    for label, env in (report.get("machines") or {}).items():
        n = sum(1 for r in report["cells"] if r.get("ran_on") == label) // max(1, len(report["config"]["strategies"]))
        console.print(f"  {label}: Linux {env.get('kernel')} {env.get('arch')}, {env.get('cpu_model', '?')}, "
                      f"{env.get('page_size')}-byte pages; {n} cells")
    for r in report.get("retried") or []:
        console.print(retried_line(r, "cell "))
    for r in report.get("failed") or []:
        console.print(f"[red]failed[/red]: cell {r['key']}: {r['reason']} ({r['attempts']} attempts)")
    if report.get("by_kernel"):
        render_side_by_side(report["by_kernel"], console, "The same grid per kernel: GC-thread ms (vs copy)")


def render_crossover(cross: Optional[dict], console: Console) -> None:
    """Per group of profiles: each profile's best MOVE-based strategy against COPY over its mutators' fault rate,
    and the crossover in words."""
    if not cross or not cross.get("groups"):
        return
    for g in cross["groups"]:
        t = Table(title=f"Where MOVE stops winning: live {g['live_fraction']:g}, {g['mutators']} mutators, batch "
                        f"{g['batch']} (best MOVE-based strategy per profile, by the pages its mutators resolved "
                        "per ms of the phase)", title_justify="left")
        for c in ("profile", "pages/ms", "COPY's pages/ms", "best", "vs copy"):
            t.add_column(c, justify="left" if c in ("profile", "best") else "right")
        for p in g["points"]:
            cp = p.get("copy_pages_per_ms")
            t.add_row(p["profile"], f"{p['pages_per_ms']:.3g}", "-" if cp is None else f"{cp:.3g}", p["strategy"],
                      f"{p['ratio']:.2f}x")
        console.print(t)
        console.print(f"crossover: {g['text']}.")


PROG = "python -m compactor.bench sweep"
DESCRIPTION = ("Where MOVE wins: GC-thread time against COPY, TLB shootdowns and the share of pages mutators "
               "resolved over a grid of live fraction x mutators x batch x mutator profile x strategy, interleaved, "
               "and the crossover: the mutators' fault rate (pages per ms) above which MOVE stops beating COPY. The "
               "default grid (about 3 minutes on 2 CPUs) is two planes: live 0.1,0.5,0.9 x mutators 0,1,2 x batch "
               "1,64,512 under the stress loop, and every profile at live 0.5, batch 64, 1 and 2 mutators; --full "
               "is every combination (about an hour); giving --live, --mutators, --batch or --profiles sweeps the "
               "one plane they span (the others from the structure plane, whose profile is stress; with --full, from "
               "the full grid).")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The sweep's options (on its own parser or the `sweep` subparser of python -m compactor.bench)."""
    size_ = ap.add_mutually_exclusive_group()
    size_.add_argument("--quick", action="store_true", help="a small grid (16 MiB; about a minute or less)")
    size_.add_argument("--full", action="store_true", help="every combination of live 0.1-0.9 x mutators 0,1,2,4 "
                                                           "x batch 1,16,64,512 x every profile (about an hour)")
    ap.add_argument("--heap", type=size)
    ap.add_argument("--live", type=list_of(fraction, "live fraction"))
    ap.add_argument("--mutators", type=list_of(int_in(0, _native.MAX_MUTATORS), "mutator"))
    ap.add_argument("--batch", type=list_of(int_in(1, _native.MAX_BATCH), "batch"))
    ap.add_argument("--profiles", "--mutator-profile", dest="profiles", type=profile_list, metavar="PROFILES",
                    help="comma-separated mutator profiles (python -m compactor.bench --list-profiles)")
    ap.add_argument("--strategies", type=choices(tuple(s for s in STRATEGIES if s != "stw"), "strategy"))
    ap.add_argument("--faults", choices=("sigbus", "thread"), default="sigbus")
    ap.add_argument("--repeat", type=int_in(1, 100))
    ap.add_argument("--seed", type=int_in(0, 2**63 - 1), default=1)
    ap.add_argument("--json", metavar="PATH", help="the sweep report ('-' = stdout, nothing else printed there)")
    ap.add_argument("--csv", metavar="PATH")
    ap.add_argument("--plot", metavar="PATH", help="heatmap, .png or .svg")
    ap.add_argument("--trace", metavar="FILE", help="a Perfetto trace of every collection (ui.perfetto.dev)")
    ap.add_argument("--gc", choices=("full", "young"), default="full",
                    help="young: the old generation's share of the space is the axis (young collections of "
                         "generational heaps; old share 0 is a full collection of today's heap): shares "
                         f"{','.join(f'{x:g}' for x in _grid.YOUNG['old'])} x mutators "
                         f"{','.join(map(str, _grid.YOUNG['planes'][0]['mutators']))}, batch 64, stress, "
                         f"{_grid.YOUNG['heap'] >> 20} MiB (--quick: {_grid.YOUNG_QUICK['heap'] >> 20} MiB, no "
                         "mutators); default full: the grids above")
    ap.add_argument("--old-shares", type=list_of(old_share, "old share"),
                    help="with --gc young: the old generation's shares of the space, e.g. 0,0.5,0.8 (0: a full "
                         "collection of a single-generation heap)")
    ap.add_argument("--quiet", action="store_true")
    add_cluster_arguments(ap, "cell")
    add_mutator_flags(ap)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    add_arguments(ap)
    return run_command(ap, ap.parse_args(argv))


def old_share(text: str) -> float:
    """An old generation's share of the space: 0 (a single-generation heap) or in (0, 0.9]."""
    v = float(text)
    if not 0.0 <= v <= 0.9:
        raise ValueError(f"must lie in [0, 0.9] (the young generation needs room), got {text}")
    return v


def young_grid_from(ap: argparse.ArgumentParser, args) -> Dict[str, Any]:
    """The young sweep's grid (--gc young): YOUNG or YOUNG_QUICK, its axes overridden by those given (--live: the
    one live fraction of the old-share-0 heap). Usage errors for what a young sweep cannot do."""
    if args.full:
        ap.error("--full is the live x mutators x batch x profile product of full collections; the young sweep's "
                 "grid is --gc young [--quick] with --old-shares, --mutators, --batch, --profiles")
    if args.plot:
        ap.error("--plot draws live x batch heatmaps; a young sweep's axis is the old generation's share: read its "
                 "table, --json or --csv")
    if args.live and len(args.live) > 1:
        ap.error("--gc young: --live takes one value (the live fraction of the old-share-0 heap)")
    grid = dict(_grid.YOUNG_QUICK if args.quick else _grid.YOUNG)
    plane = dict(grid["planes"][0])
    for k in _grid.AXES:
        if getattr(args, k):
            plane[k] = tuple(getattr(args, k))
    grid["planes"] = [plane]
    if args.old_shares:
        grid["old"] = tuple(dict.fromkeys(args.old_shares))
    for k in ("heap", "strategies", "repeat"):
        if getattr(args, k):
            grid[k] = getattr(args, k)
    if "copy" not in grid["strategies"]:
        grid["strategies"] = ("copy",) + tuple(grid["strategies"])
    if args.old_shares or any(getattr(args, k) for k in _grid.AXES):
        grid["name"] = "young-custom"
    return grid


def grid_from(args) -> Dict[str, Any]:
    """The grid the arguments ask for: --quick, --full or the default, or the one plane of the axes given."""
    base = QUICK if args.quick else FULL if args.full else DEFAULT
    grid = dict(base)
    given = {k: getattr(args, k) for k in _grid.AXES}
    if any(given.values()):
        grid["planes"], grid["name"] = _grid.custom(base, given), "custom"
    for k in ("heap", "strategies", "repeat"):
        if getattr(args, k):
            grid[k] = getattr(args, k)
    if "copy" not in grid["strategies"]:
        grid["strategies"] = ("copy",) + tuple(grid["strategies"])  # the reference of every ratio
    return grid


def run_command(ap: argparse.ArgumentParser, args) -> int:
    """The sweep for parsed arguments; usage errors through `ap`."""
    plot_path(ap, args.plot)
    check_output_paths(ap, args)
    if args.old_shares and args.gc != "young":
        ap.error("--old-shares is the axis of young sweeps: add --gc young")
    young = args.gc == "young"
    check_cluster_arguments(ap, args, "sweep")
    grid = young_grid_from(ap, args) if young else grid_from(args)
    options = mutator_flags(args)
    try:
        for p in _grid.union(grid["planes"], "profiles"):
            make_config("copy", args.faults, max(_grid.union(grid["planes"], "mutators")),
                        **_profiles.options_for(p, 1, options))
    except ValueError as e:
        ap.error(str(e))
    err = Console(stderr=True)
    from .args import trace_path

    try:
        if args.cluster:
            report = progress.run(lambda tick: run_on_cluster(args.cluster, grid, args.faults, args.seed, options,
                                                              args.cluster_devices, tick), args.quiet, err)
        else:
            trace = TraceWriter(trace_path(args.trace)) if args.trace else None
            sweep_of = run_young_sweep if young else run_sweep
            try:
                report = progress.run(lambda tick: sweep_of(grid["heap"], grid["planes"], grid["strategies"],
                                                            grid["repeat"], args.faults, args.seed, options=options,
                                                            progress=tick, grid_name=grid["name"], trace=trace,
                                                            **({"olds": grid["old"]} if young else {})),
                                      args.quiet, err)
            except BaseException:
                if trace is not None:
                    trace.abort()
                raise
            if trace is not None:
                report["trace"] = vars(trace.close())
    except BenchError as e:
        err.print(f"[red]error[/red]: {escape(str(e))}")
        return e.status
    emit_report(report, args.json, lambda r: (render_young if young else render)(r, Console(width=200)))
    if args.csv:
        write_csv(report, args.csv)
    if args.plot:
        written = write_heatmap(report, args.plot)
        if len(written) > 1:
            err.print("heatmaps, one per kernel: " + ", ".join(f"[{i + 1}] {w}" for i, w in enumerate(written)))
    for f in report["failed"]:
        err.print(f"[red]error[/red]: cell {f['key']} failed: {escape(f['reason'])}")
    return 1 if report["failed"] else 0


def run_on_cluster(address: str, grid: Dict[str, Any], faults: str, seed: int, options: dict, devices: bool,
                   tick) -> dict:
    """The grid's cells on a Dask cluster (compactor.bench.cluster), in the same report as a local sweep."""
    from .cluster import run_sweep_cells

    started = time.time()
    out = run_sweep_cells(address, grid["heap"], _grid.cells(grid["planes"]), grid["strategies"], grid["repeat"],
                          faults, seed, options, devices, tick)
    if not out["machines"]:
        raise BenchError("no cell of the sweep ran on the cluster: " + "; ".join(
            f"{f['key']}: {f['reason']}" for f in out["failed"]), 1)
    return sweep_report(out["rows"], out["machines"], grid["heap"], grid["planes"], grid["strategies"],
                        grid["repeat"], faults, seed, options, grid["name"], started, out["retried"], out["failed"],
                        out["cluster"])
