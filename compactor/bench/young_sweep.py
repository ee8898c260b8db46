"""`sweep --gc young`: the old generation's share of the space as an axis (issue 23). One heap per share, generated
from the seed: share 0 is today's single-generation heap at the plane's live fraction, collected in full; a share
above 0 is a generational heap (compactor.generations: mid generation 5% of the space, 10% of the young generation
surviving) collected young, so its old generation is mapped back in place while the rest is compacted. Every cell
(share x mutators x batch x profile) runs every strategy, interleaved, against COPY of the same cell.

The cells are the sweep's (compactor.bench.sweep builds the report): `live_fraction` is the share of the heap a full
marking finds live (a fact of the heap, not a knob, for a generational one), with `old_fraction` (the axis) and
`kind` (young or full) beside it."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from rich.console import Console
from rich.table import Table

from ..heap import Heap, HeapSpec
from ..marking import mark
from ..planning import plan as make_plan
from ..trace import DEFAULT_EVENTS, TraceWriter, collection_name
from . import grid as _grid
from .cell import batch_executors, cell_rows, run_cell_repetition
from .env import check_memory, check_usable, host_environment, memory_available
from .generational import GENERATION_DEFAULTS, art_metrics, run_generational
from .machines import machine_label


def old_share_heap(heap_bytes: int, old: float, live: float, seed: int) -> Tuple[Heap, str]:
    """The heap of one old-generation share and the collection it gets: a single-generation heap collected in full
    (share 0), or a generational heap with that old share collected young."""
    if old <= 0:
        return Heap.generate(HeapSpec(size=heap_bytes, live_fraction=live, seed=seed)), "full"
    shares: Dict[str, Any] = dict(GENERATION_DEFAULTS, old_fraction=old)
    return Heap.generate(HeapSpec(size=heap_bytes, seed=seed, **shares)), "young"


def run_young_cells(heap_bytes: int, olds: tuple, plane: dict, strategies: tuple, repeat: int,
                    faults: str = "sigbus", seed: int = 1, options: Optional[dict] = None,
                    progress: Optional[Callable[[str, int, int], None]] = None,
                    trace: Optional[TraceWriter] = None) -> Tuple[List[dict], Dict[str, dict], List[dict]]:
    """Runs every old share's cells (the plane's mutators x batch x profiles, its one live fraction for share 0);
    returns the rows (tagged with this machine), the machines ({label: environment}) and the planes the rows make
    (one per share, its live fraction the heap's). Raises BenchError (status 3) when a heap fails verification."""
    env = host_environment()
    check_usable(env)
    check_memory(heap_bytes, memory_available())
    tick = progress or (lambda *_: None)
    live = plane["live"][0]
    sub = [(m, b, p) for _, m, b, p in _grid.cells([dict(plane, live=(live,))])]
    total = repeat * len(olds) * len(sub) * len(strategies)
    done = [0]
    rows: List[dict] = []
    planes: List[dict] = []
    label = machine_label(env)
    for old in olds:
        heap, kind = old_share_heap(heap_bytes, old, live, seed)
        plan = make_plan(heap, kind=kind)
        share = round(mark(heap, "full").live_bytes / heap.heap_size, 3) if kind == "young" else live
        planes.append({"live": (share,), "mutators": plane["mutators"], "batch": plane["batch"],
                       "profiles": plane["profiles"], "old_fraction": old})
        raws: Dict[tuple, Dict[str, List[dict]]] = {}
        with batch_executors((b for _, b, _ in sub), seed, options, heap, plan, {kind: plan},
                             DEFAULT_EVENTS if trace is not None else 0) as executors:
            for rep in range(repeat):
                for m, b, p in sub:
                    c = (share, m, b, p)

                    def before(s, m=m, b=b, p=p, rep=rep, old=old, kind=kind):
                        tick(f"old {old:.2f} ({kind}): {s} batch {b}, {m} mutators {p} (repetition {rep + 1}/{repeat})",
                             done[0], total)
                        done[0] += 1

                    for s, raw in run_cell_repetition(executors[b], c, strategies, faults, rep, before, kind).items():
                        events = raw.pop("trace", None)
                        if trace is not None and events:
                            trace.add(collection_name(raw, f"{kind} old {old:.2f} {p} batch {b} #{rep + 1}"), events)
                        raws.setdefault(c, {}).setdefault(s, []).append(raw)
        for c, by_s in raws.items():
            for row in cell_rows(c, by_s):
                gen = run_generational(by_s[row["strategy"]])
                row.update(ran_on=label, kind=kind, old_fraction=old)
                if gen is not None:
                    row.update(generational=gen, art_metrics=art_metrics(kind, gen))
                rows.append(row)
    tick("done", total, total)
    return rows, {label: env}, planes


def old_share_summary(rows: List[dict]) -> List[dict]:
    """Per old share and cell (mutators, batch, profile): each strategy's median GC-thread time against COPY of the
    same cell, with the collection's kind and the pages it mapped back and compacted (MOVE's run)."""
    out: Dict[tuple, dict] = {}
    for r in rows:
        if "old_fraction" not in r:
            continue
        key = (r["old_fraction"], r["mutators"], r["batch"], r.get("profile", "stress"))
        d = out.setdefault(key, {"old_fraction": key[0], "kind": r.get("kind", "full"), "mutators": key[1],
                                 "batch": key[2], "profile": key[3], "live_fraction": r["live_fraction"],
                                 "vs_copy": {}, "median_ms": {}})
        d["vs_copy"][r["strategy"]] = r.get("ratio_vs_copy_median")
        d["median_ms"][r["strategy"]] = 1e3 * r["median"]
        g = r.get("generational")
        if g and r["strategy"] == "move":
            d["pages_mapped_back"] = g["pages_mapped_back_move"] + g["pages_mapped_back_copy"]
            d["pages_compacted"] = g["pages_compacted"]
    return sorted(out.values(), key=lambda d: (d["mutators"], d["batch"], d["profile"], d["old_fraction"]))


def render_young(report: dict, console: Console) -> None:
    """The young sweep's table: per old share and cell, each strategy's GC-thread ms (vs COPY), the kind and the
    pages MOVE's run mapped back and compacted."""
    cfg = report["config"]
    strategies = cfg["strategies"]
    t = Table(title=f"Young sweep: GC-thread ms (vs copy) by the old generation's share; {cfg['heap_bytes'] >> 20} "
                    f"MiB, {cfg['faults']}, medians of {cfg['repeat']} (old 0: a full collection of a "
                    "single-generation heap; above 0: a young collection)", title_justify="left")
    for c in ("old", "kind", "live", "mut.", "batch", "profile", *strategies, "mapped back", "compacted"):
        t.add_column(c, justify="left" if c in ("kind", "profile") else "right")
    for d in report.get("old_share") or []:
        cells = []
        for s in strategies:
            ms, q = d["median_ms"].get(s), d["vs_copy"].get(s)
            cells.append("-" if ms is None else f"{ms:.1f}" + ("" if s == "copy" or q is None else f" ({q:.2f}x)"))
        t.add_row(f"{d['old_fraction']:.2f}", d["kind"], f"{d['live_fraction']:.2f}", str(d["mutators"]),
                  str(d["batch"]), d["profile"] if d["mutators"] else "-", *cells,
                  str(d.get("pages_mapped_back", "-")), str(d.get("pages_compacted", "-")))
    console.print(t)
