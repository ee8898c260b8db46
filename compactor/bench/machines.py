"""Sweeps by machine: the label of a machine, the kernel group of its environment, the same grid per kernel side by
side (a sweep whose cells came from machines with different kernels or devices, or sweeps merged by `compare`)."""

from __future__ import annotations

import statistics
from typing import Callable, Dict, List, Optional, Sequence

from rich.console import Console
from rich.table import Table

from . import grid as _grid


def machine_label(env: dict, worker: Optional[str] = None) -> str:
    """A machine's name in a report: the host's name (a device: its model and serial), and the Dask worker's name
    when a cluster ran it (two workers on one host are two machines)."""
    if env.get("where") == "device":
        base = f"{env.get('model') or 'device'} ({env.get('serial') or '?'})"
    else:
        base = env.get("hostname") or env.get("model") or "host"
    return base if worker is None else f"{base}/{worker}"


def retried_line(r: dict, what: str) -> str:
    """The report line of a cell or comparison (`what` names it) that a cluster ran again after its worker died."""
    died = ", ".join(f"{d['name']} ({d['worker']} on {d['host']}, pid {d['pid']})" for d in r["died"])
    return (f"[yellow]retried[/yellow]: {what}{r['key']}: its worker died ({died}); attempt {r['attempts']} on "
            f"{r['delivered_by']} delivered it")


def kernel_group(env: dict) -> str:
    """What a kernel A/B compares: the kernel release and architecture, and for a phone its model."""
    kernel = f"Linux {env.get('kernel', '?')} {env.get('arch', '')}".rstrip()
    if env.get("where") == "device":
        return f"{env.get('model') or 'device'}, {kernel}" + (" (emulated)" if env.get("emulated") else "")
    return kernel


def _cell_key(r: dict) -> tuple:
    return (r["live_fraction"], r["mutators"], r["batch"], r.get("profile", "stress"), r["strategy"])


def side_by_side(cells: List[dict], group_of: Callable[[dict], str], planes: List[dict], strategies: Sequence[str],
                 describe: Optional[Dict[str, dict]] = None) -> dict:
    """The same grid per group, side by side: per grid cell and strategy, each group's median GC-thread time and
    ratio against COPY (the median over the group's machines when several ran the cell; null where none did)."""
    names: List[str] = []
    for r in cells:
        g = group_of(r)
        if g not in names:
            names.append(g)
    vals: Dict[tuple, Dict[str, List[dict]]] = {}
    for r in cells:
        vals.setdefault(_cell_key(r), {}).setdefault(group_of(r), []).append(r)

    def med(rs: Optional[List[dict]], k: str):
        xs = [r[k] for r in rs or [] if r.get(k) is not None]
        return statistics.median(xs) if xs else None

    rows = []
    for f, m, b, p in _grid.cells(planes):
        for s in strategies:
            by = vals.get((f, m, b, p, s))
            if not by:
                continue
            rows.append({"live_fraction": f, "mutators": m, "batch": b, "profile": p, "strategy": s,
                         "median": [med(by.get(g), "median") for g in names],
                         "ratio_vs_copy_median": [med(by.get(g), "ratio_vs_copy_median") for g in names]})
    groups = []
    for g in names:
        machines = sorted({r.get("ran_on") or "?" for r in cells if group_of(r) == g})
        groups.append({"name": g, "machines": machines, "cells": sum(1 for r in cells if group_of(r) == g),
                       **({k: (describe or {}).get(g, {}).get(k) for k in ("kernel", "arch", "where", "model")}
                          if describe else {})})
    return {"groups": groups, "rows": rows}


def by_kernel(report: dict) -> Optional[dict]:
    """The report's cells grouped by their machines' kernel group (kernel_group), side by side; None when every
    cell ran on one kernel (and device)."""
    machines = report.get("machines") or {}
    env = report.get("environment") or {}

    def group_of(r: dict) -> str:
        return kernel_group(machines.get(r.get("ran_on"), env))

    if len({group_of(r) for r in report["cells"]}) < 2:
        return None
    describe = {kernel_group(e): e for e in machines.values()}
    cfg = report["config"]
    return {"key": "kernel", **side_by_side(report["cells"], group_of, cfg["planes"], cfg["strategies"], describe)}


def render_side_by_side(section: dict, console: Console, title: str) -> None:
    """The side-by-side grid as a table: per group, GC-thread ms (ratio against COPY)."""
    names = [g["name"] for g in section["groups"]]
    for i, g in enumerate(section["groups"]):
        console.print(f"[{i + 1}] {g['name']}: {g['cells']} cells from {', '.join(g['machines'])}")
    t = Table(title=title, title_justify="left")
    for c in ("live", "mut.", "batch", "profile", "strategy") + tuple(f"[{i + 1}] ms (vs copy)"
                                                                        for i in range(len(names))):
        t.add_column(c, justify="left" if c in ("profile", "strategy") else "right")
    for r in section["rows"]:
        def one(i: int, r: dict = r) -> str:
            m, q = r["median"][i], r["ratio_vs_copy_median"][i]
            if m is None:
                return "-"
            return f"{1e3 * m:.1f}" + ("" if q is None or r["strategy"] == "copy" else f" ({q:.2f}x)")

        t.add_row(f"{r['live_fraction']:.2f}", str(r["mutators"]), str(r["batch"]),
                  r["profile"] if r["mutators"] else "-", r["strategy"], *(one(i) for i in range(len(names))))
    console.print(t)


def merge_sweeps(reports: List[dict], names: List[str]) -> dict:
    """Sweep reports merged into one list of cells, each tagged with its machine (a report before schema 3 has one
    machine: its environment's); a label two files share for different environments gets its file's name."""
    machines: Dict[str, dict] = {}
    cells: List[dict] = []
    for rep, name in zip(reports, names):
        envs = rep.get("machines") or {machine_label(rep["environment"]): rep["environment"]}
        default = next(iter(envs))
        rename = {}
        for label, env in envs.items():
            new = label
            if label in machines and machines[label] != env:
                new = f"{label} ({name})"
            machines[new] = env
            rename[label] = new
        cells += [dict(r, ran_on=rename[r.get("ran_on") or default]) for r in rep["cells"]]
    first = reports[0]["config"]
    planes: List[dict] = []
    for rep in reports:
        planes += [pl for pl in rep["config"]["planes"] if pl not in planes]
    strategies = list(first["strategies"]) + [s for rep in reports for s in rep["config"]["strategies"]
                                              if s not in first["strategies"]]
    return {"cells": cells, "machines": machines, "environment": reports[0]["environment"],
            "config": dict(first, planes=planes, strategies=strategies)}


def compare_sweeps(reports: List[dict], names: List[str], console: Console) -> dict:
    """`compare` of sweep reports: the cells of every file lined up by kernel when the machines' kernels differ,
    else by file; returns the side-by-side section printed."""
    merged = merge_sweeps(reports, names)
    section = by_kernel(merged)
    title = "Sweeps side by side by kernel: GC-thread ms (vs copy)"
    if section is None:
        cells = [dict(r, ran_on=r.get("ran_on") or machine_label(rep["environment"]), file=n)
                 for rep, n in zip(reports, names) for r in rep["cells"]]
        section = {"key": "file", **side_by_side(cells, lambda r: r["file"], merged["config"]["planes"],
                                                 merged["config"]["strategies"])}
        title = "Sweeps side by side by file (one kernel): GC-thread ms (vs copy)"
    render_side_by_side(section, console, title)
    return section
