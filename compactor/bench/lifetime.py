"""`python -m compactor.bench lifetime`: an app's heap over many collections (issue 23). A generational heap, then
N cycles of: an epoch of app activity (compactor.generations.mutate: allocation, reference stores into old objects
that dirty their cards, roots turned over), a collection whose kind ART's heuristic chose, verified, and the heap
it leaves (after_collection: FinishPhase's promotion). Each strategy lives its own lifetime from the same seed,
interleaved cycle by cycle; a plan's layout does not depend on the strategy, so two lifetimes that chose the same
kinds went through the same heaps, and the GC-thread time is what differs.

The heuristic (runtime/gc/heap.cc, Heap::GrowForUtilization, generational CMC): after a full collection the next
one is young; after a young one, another young one while its throughput (bytes freed per second of GC-thread
time here) x YOUNG_THROUGHPUT_ADJUSTMENT is at least the full collections' mean throughput (freed over time, all
full collections so far), and only once a full collection ran; a full one otherwise, and whenever the free space
after the collection cannot take the next epoch's allocation (ART: bytes allocated past the concurrent start
threshold). The first collection is young (the heap is generational already, as after earlier collections).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import _native
from ..collector import STRATEGIES, collect
from ..errors import HeapCorruption
from ..generations import after_collection, mutate
from ..heap import Heap, HeapSpec
from ..kernel_facts import MOVE_STRATEGIES
from ..planning import plan as make_plan
from . import progress as _progress
from .args import check_output_paths, int_in, size
from .env import check_memory, check_usable, host_environment, memory_available
from .generational import GENERATION_DEFAULTS, add_generation_flags, spec_error
from .output import emit_report
from .schema import LIFETIME_SCHEMA_ID
from .types import BenchError

YOUNG_THROUGHPUT_ADJUSTMENT = 0.5  # heap.cc GetStickyGcThroughputAdjustment with generational CMC
DEFAULT_HEAP = 128 << 20  # 20 cycles of COPY and MOVE in about a minute on 2 CPUs (64 MiB: about 20 s)
DEFAULT_CYCLES = 20
DEFAULT_ALLOC_SHARE = 0.10  # of the heap, per epoch
LIFETIME_STRATEGIES = ("copy", "move")

PROG = "python -m compactor.bench lifetime"
DESCRIPTION = ("An app's heap over many collections: a generational heap (old 80%, mid 5%, young survival 10% unless "
               "given), then per cycle an epoch of allocation (--alloc, default 10% of the heap), reference stores "
               "into old objects and roots turned over, a young or full collection chosen by ART's heuristic "
               "(heap.cc GrowForUtilization: young again while young throughput x 0.5 >= the mean full throughput "
               "and a full one ran; full when the free space cannot take the next epoch), verified, and the "
               "promotion it leaves. COPY and MOVE live separate lifetimes from the same seed, interleaved cycle by "
               "cycle. Reports per cycle the kind, GC-thread time and bytes freed, and the young/full mix and totals "
               "per strategy. The default (128 MiB, 20 cycles) takes about a minute on 2 CPUs.")


def next_kind(history: List[dict], free_bytes: int, alloc_bytes: int) -> Tuple[str, str]:
    """ART's choice of the next collection's kind from a lifetime's collections so far (each with "kind",
    "freed_bytes", "gc_thread_s"), the free space the last one left and the next epoch's allocation; the kind and
    why, in words."""
    if not history:
        return "young", "the first collection (the heap is generational already)"
    if free_bytes < alloc_bytes:
        return "full", f"the free space ({free_bytes >> 10} KiB) cannot take the next epoch's allocation"
    last = history[-1]
    if last["kind"] == "full":
        return "young", "after a full collection"
    fulls = [h for h in history if h["kind"] == "full"]
    if not fulls:
        return "full", "no full collection ran yet (no mean full throughput to set a young one against)"
    mean_full = sum(h["freed_bytes"] for h in fulls) / max(sum(h["gc_thread_s"] for h in fulls), 1e-12)
    adjusted = throughput(last) * YOUNG_THROUGHPUT_ADJUSTMENT
    words = (f"young throughput x {YOUNG_THROUGHPUT_ADJUSTMENT} ({adjusted / 2**20:.0f} MiB/s) "
             f"{'>=' if adjusted >= mean_full else '<'} the mean full throughput ({mean_full / 2**20:.0f} MiB/s)")
    return ("young" if adjusted >= mean_full else "full"), words


def throughput(h: dict) -> float:
    """A collection's throughput: bytes freed per second of GC-thread time."""
    return h["freed_bytes"] / max(h["gc_thread_s"], 1e-12)


def _copy(heap: Heap) -> Heap:
    """The same heap (table and generations) in a space of its own: another strategy's lifetime starts from it."""
    out = Heap(heap.heap_size, heap.offset, heap.size, heap.num_refs, heap.identity, heap.refs, heap.roots,
               spec=heap.spec)
    out.generations = heap.generations
    return out


class Lifetime:
    """One strategy's lifetime: its heap, its collections so far."""

    def __init__(self, strategy: str, heap: Heap) -> None:
        self.strategy, self.heap = strategy, heap
        self.history: List[dict] = []
        self.free_bytes = heap.heap_size - heap.used_end


def run_lifetime(heap_bytes: int = DEFAULT_HEAP, cycles: int = DEFAULT_CYCLES, alloc_bytes: Optional[int] = None,
                 generations: Optional[Dict[str, Any]] = None, strategies: tuple = LIFETIME_STRATEGIES,
                 faults: str = "sigbus", mutators: int = 0, seed: int = 1,
                 progress: Optional[Callable[[str, int, int], None]] = None) -> dict:
    """Runs every strategy's lifetime, interleaved cycle by cycle, and returns the lifetime report. Raises
    BenchError (status 3) when a collection fails verification."""
    started = time.time()
    env = host_environment()
    check_usable(env)
    check_memory(heap_bytes * len(strategies), memory_available())
    tick = progress or (lambda *_: None)
    if not env.get("move") and any(s in MOVE_STRATEGIES for s in strategies):
        raise BenchError("this kernel has no UFFDIO_MOVE (UFFD_FEATURE_MOVE, Linux >= 6.8): run the lifetime with "
                         "--strategies copy", 2)
    shares: Dict[str, Any] = dict(GENERATION_DEFAULTS, **(generations or {}))
    alloc = int(alloc_bytes if alloc_bytes is not None else DEFAULT_ALLOC_SHARE * heap_bytes)
    try:
        spec = HeapSpec(size=heap_bytes, seed=seed, **shares)
    except ValueError as e:
        raise BenchError(f"lifetime heap: {e}", 2) from None
    tick("generating the heap", 0, 1)
    first = Heap.generate(spec)
    lives = [Lifetime(s, first if i == 0 else _copy(first)) for i, s in enumerate(strategies)]
    rows: List[dict] = []
    total, done = cycles * len(lives), 0
    for cycle in range(1, cycles + 1):
        for life in lives:
            tick(f"cycle {cycle}/{cycles}: {life.strategy}", done, total)
            heap = life.heap
            if cycle > 1:  # an epoch of app activity (the first collection takes the generated heap as it is)
                heap = mutate(heap, alloc_bytes=alloc, young_survival=shares["young_survival"],
                              seed=seed * 7919 + cycle, tag=1000 + cycle)
            kind, why = next_kind(life.history, life.free_bytes, alloc)
            plan = make_plan(heap, kind=kind)
            try:
                r = collect(heap, life.strategy, faults=faults, mutators=mutators, plan=plan, seed=seed + cycle)
            except HeapCorruption as e:
                raise BenchError(f"lifetime {life.strategy} cycle {cycle} ({kind}): the heap failed verification: "
                                 f"{e}", 3) from e
            if not r.verified:
                raise BenchError(f"lifetime {life.strategy} cycle {cycle} ({kind}): the heap was not verified", 3)
            g = r.generational
            row = {"cycle": cycle, "strategy": life.strategy, "kind": kind, "why": why, "verified": True,
                   "gc_thread_s": r.gc_thread_seconds, "pause_s": r.pause_seconds,
                   "freed_bytes": g["freed_bytes"], "scanned_bytes": g["scanned_bytes"],
                   "used_bytes": heap.used_end, "post_compact_end": plan.post_compact_end,
                   "old_gen_end": heap.generations.old_end if heap.generations is not None else 0,
                   "dirty_cards": g["dirty_cards"],
                   "pages_mapped_back": g["pages_mapped_back_move"] + g["pages_mapped_back_copy"],
                   "pages_compacted": g["pages_compacted"],
                   "allocated_bytes": (heap.origin or {}).get("allocated_bytes", 0)}
            row["throughput_bytes_per_s"] = throughput(row)
            rows.append(row)
            life.history.append(row)
            life.heap = after_collection(plan, seed=seed * 31 + cycle, stale_cards=spec.stale_cards)
            life.free_bytes = heap.heap_size - plan.post_compact_end
            done += 1
    tick("done", total, total)
    return {"schema": LIFETIME_SCHEMA_ID,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "command": PROG, "environment": env,
            "config": {"heap_bytes": spec.size, "cycles": cycles, "alloc_bytes": alloc, "generations": shares,
                       "strategies": list(strategies), "faults": faults, "mutators": mutators, "seed": seed,
                       "young_throughput_adjustment": YOUNG_THROUGHPUT_ADJUSTMENT, "interleaved": True},
            "cycles": rows, "strategies": summary(rows, strategies), "elapsed_s": time.time() - started}


def summary(rows: List[dict], strategies: tuple) -> Dict[str, dict]:
    """Per strategy: the young/full mix, GC-thread time and bytes freed in total and per kind, and (non-COPY) the
    total GC-thread time against COPY's."""
    out: Dict[str, dict] = {}
    for s in strategies:
        mine = [r for r in rows if r["strategy"] == s]
        d: Dict[str, Any] = {"collections": len(mine), "verified": all(r["verified"] for r in mine),
                             "gc_thread_s": sum(r["gc_thread_s"] for r in mine),
                             "freed_bytes": sum(r["freed_bytes"] for r in mine)}
        for k in ("young", "full"):
            ks = [r for r in mine if r["kind"] == k]
            d[k] = {"count": len(ks), "gc_thread_s": sum(r["gc_thread_s"] for r in ks),
                    "mean_gc_thread_s": sum(r["gc_thread_s"] for r in ks) / len(ks) if ks else None,
                    "freed_bytes": sum(r["freed_bytes"] for r in ks)}
        out[s] = d
    copy = out.get("copy")
    for d in out.values():
        d["gc_thread_vs_copy"] = d["gc_thread_s"] / copy["gc_thread_s"] if copy and copy["gc_thread_s"] else None
    return out


def render(report: dict, console: Console) -> None:
    """Per cycle, each strategy's kind, GC-thread ms and MiB freed; then the mix and totals per strategy."""
    cfg = report["config"]
    g = cfg["generations"]
    strategies = cfg["strategies"]
    t = Table(title=f"Lifetime: {cfg['cycles']} cycles of a {cfg['heap_bytes'] >> 20} MiB generational heap (old "
                    f"{g['old_fraction']:.0%}, mid {g['mid_fraction']:.0%}, young survival {g['young_survival']:.0%}), "
                    f"{cfg['alloc_bytes'] / 2**20:.1f} MiB allocated per epoch, {cfg['faults']}, {cfg['mutators']} "
                    "mutators; every collection verified", title_justify="left")
    t.add_column("cycle", justify="right")
    for s in strategies:
        for c in ("kind", "GC ms", "freed MiB"):
            t.add_column(f"{s} {c}", justify="left" if c == "kind" else "right")
    t.add_column(f"why ({strategies[0]})")
    by = {(r["cycle"], r["strategy"]): r for r in report["cycles"]}
    for cycle in range(1, cfg["cycles"] + 1):
        cells: List[str] = []
        for s in strategies:
            r = by.get((cycle, s))
            cells += ["-", "-", "-"] if r is None else [r["kind"], f"{1e3 * r['gc_thread_s']:.1f}",
                                                        f"{r['freed_bytes'] / 2**20:.1f}"]
        first = by.get((cycle, strategies[0]))
        t.add_row(str(cycle), *cells, escape(first["why"]) if first else "-")
    console.print(t)
    t = Table(title="Per strategy: the young/full mix and GC-thread time", title_justify="left")
    for c in ("strategy", "young", "full", "young ms (mean)", "full ms (mean)", "total GC ms", "vs copy",
              "freed MiB"):
        t.add_column(c, justify="left" if c == "strategy" else "right")
    for s, d in report["strategies"].items():
        y, f = d["young"], d["full"]
        mean = lambda k: "-" if k["mean_gc_thread_s"] is None else f"{1e3 * k['mean_gc_thread_s']:.1f}"  # noqa: E731
        t.add_row(s, str(y["count"]), str(f["count"]), f"{1e3 * y['gc_thread_s']:.1f} ({mean(y)})",
                  f"{1e3 * f['gc_thread_s']:.1f} ({mean(f)})", f"{1e3 * d['gc_thread_s']:.1f}",
                  "-" if d["gc_thread_vs_copy"] is None else f"{d['gc_thread_vs_copy']:.2f}x",
                  f"{d['freed_bytes'] / 2**20:.1f}")
    console.print(t)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The lifetime's options (the `lifetime` subparser of python -m compactor.bench)."""
    ap.add_argument("--heap", type=size, default=DEFAULT_HEAP, help="moving-space size (default 128MiB)")
    ap.add_argument("--cycles", type=int_in(1, 10000), default=DEFAULT_CYCLES, help="collections per strategy "
                                                                                     "(default 20)")
    ap.add_argument("--alloc", type=size, help="bytes allocated per epoch, e.g. 6MiB (default 10%% of the heap)")
    add_generation_flags(ap, "at the start: ")
    ap.add_argument("--strategies", type=_strategies, default=LIFETIME_STRATEGIES,
                    help="comma-separated concurrent strategies, each its own lifetime (default copy,move)")
    ap.add_argument("--faults", choices=("sigbus", "thread"), default="sigbus")
    ap.add_argument("--mutators", type=int_in(0, _native.MAX_MUTATORS), default=0,
                    help="mutator threads during each collection (default 0)")
    ap.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1)
    ap.add_argument("--json", metavar="PATH", help="the lifetime report, written atomically ('-' = stdout, nothing "
                                                   "else printed there)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")


def _strategies(text: str) -> tuple:
    from .args import choices

    return choices(tuple(s for s in STRATEGIES if s != "stw"), "strategy")(text)


def run_command(ap: argparse.ArgumentParser, args) -> int:
    """The lifetime for parsed arguments; usage errors through `ap`."""
    check_output_paths(ap, args)
    gens = {k: getattr(args, k) for k in GENERATION_DEFAULTS if getattr(args, k, None) is not None}
    try:
        HeapSpec(size=args.heap, **dict(GENERATION_DEFAULTS, **gens))
    except ValueError as e:
        ap.error(spec_error(e))
    if args.alloc is not None and args.alloc >= args.heap:
        ap.error(f"--alloc must be smaller than the heap ({args.heap >> 20} MiB)")
    err = Console(stderr=True)
    try:
        report = _progress.run(lambda tick: run_lifetime(args.heap, args.cycles, args.alloc, gens, args.strategies,
                                                         args.faults, args.mutators, args.seed, tick),
                               args.quiet, err)
    except BenchError as e:
        err.print(f"[red]error[/red]: {escape(str(e))}")
        return e.status
    emit_report(report, args.json, lambda r: render(r, Console(width=200)))
    return 0
