"""One cell of a sweep (live fraction, mutators, batch, mutator profile; every strategy, interleaved): its heap and
plan, one repetition of its strategies through an executor, the whole cell on one machine, and its report rows.

The local sweep (compactor.bench.sweep) and a cluster's workers (compactor.bench.cluster) both run cells through
these functions: a worker builds the heap and the plan with the same code and runs the collections with the same
executor (the binding, or compactor-runner on a phone), so a cell measured on a fleet is the cell measured here."""

from __future__ import annotations

import contextlib
import statistics
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ..errors import HeapCorruption
from ..heap import Heap, HeapSpec
from ..planning import plan as make_plan
from .env import check_memory, check_usable
from .executors import BindingExecutor, DeviceExecutor, Executor
from .grid import Cell
from .stats import load_measures, mutator_measures
from .types import BenchError, Scenario


def describe(cell: Cell) -> str:
    f, m, b, p = cell
    return f"live={f} mutators={m} batch={b} profile={p}"


def cell_heap(heap_bytes: int, live: float, seed: int, page_size: Optional[int] = None) -> Tuple[Heap, object]:
    """The cell's heap (generated from the seed: the same on every machine) and its plan (for the page size of the
    machine that runs it; None: this host's)."""
    heap = Heap.generate(HeapSpec(size=heap_bytes, live_fraction=live, seed=seed))
    return heap, make_plan(heap, page_size=page_size)


def cell_executor(batch: int, seed: int, options: Optional[dict], device: Optional[str] = None) -> Executor:
    """The executor of a cell: the binding in this process, or compactor-runner on the ADB device `device`."""
    if device:
        return DeviceExecutor(device, batch, seed, options)
    return BindingExecutor(batch, seed, options)


@contextlib.contextmanager
def batch_executors(batches: Iterable[int], seed: int, options: Optional[dict], heap: Heap, plan,
                    plans: Optional[dict] = None, trace_events: int = 0) -> Iterator[Dict[int, Executor]]:
    """One executor per batch size of `batches` (the binding), prepared on `heap` and `plan` (`plans`: by kind),
    recording `trace_events` events per thread; closed on leaving."""
    executors = {b: cell_executor(b, seed, options) for b in sorted(set(batches))}
    try:
        for ex in executors.values():
            ex.trace_events = trace_events
            ex.prepare(heap, plan, plans)
        yield executors
    finally:
        for ex in executors.values():
            ex.close()


def run_cell_repetition(executor: Executor, cell: Cell, strategies: tuple, faults: str, rep: int,
                        before: Optional[Callable[[str], None]] = None, kind: str = "full") -> Dict[str, dict]:
    """One repetition of a cell: each strategy once, in order, on the executor's prepared heap (whose batch is the
    cell's), a `kind` collection; the raw results by strategy. Raises BenchError (status 3) when a heap fails
    verification."""
    _, m, _, p = cell
    out = {}
    for s in strategies:
        if before:
            before(s)
        try:
            raw = executor.run(Scenario(s, faults, m, p, kind), rep)
        except HeapCorruption as e:
            raise BenchError(f"sweep cell {describe(cell)} {s}: verification failed: {e}", 3) from e
        raw.pop("latency_samples_ns", None)  # the sweep keeps the core's percentiles only
        out[s] = raw
    return out


def cell_rows(cell: Cell, raws: Dict[str, List[dict]]) -> List[dict]:
    """The report rows of one cell, one per strategy: times, ratios against COPY of the same cell and repetition,
    verification, pages, load and mutator measures."""
    f, m, b, p = cell
    rows = []
    base = [r["gc_thread_s"] for r in raws.get("copy", [])]
    for s, reps in raws.items():
        gc = [r["gc_thread_s"] for r in reps]
        ratios = [g / c for g, c in zip(gc, base)] if base else []
        row = {"live_fraction": f, "mutators": m, "batch": b, "profile": p, "strategy": s, "gc_thread_s": gc,
               "median": statistics.median(gc), "ratio_vs_copy": ratios,
               "ratio_vs_copy_median": statistics.median(ratios) if ratios else None,
               "verified": all(r["verified"] for r in reps), "pages": reps[0]["pages"]["total"]}
        row.update(load_measures(reps))
        row.update(mutator_measures(reps))
        rows.append(row)
    return rows


def run_cell(heap_bytes: int, cell: Cell, strategies: tuple, repeat: int, faults: str = "sigbus", seed: int = 1,
             options: Optional[dict] = None, device: Optional[str] = None) -> dict:
    """A whole cell on this machine (a cluster's task): its heap, every strategy once per repetition, interleaved;
    returns {"rows": the cell's rows, "environment": the machine's (or the device's) environment}."""
    executor = cell_executor(cell[2], seed, options, device)
    try:
        env = executor.environment()
        check_usable(env)
        check_memory(heap_bytes, executor.memory_available())
        heap, plan = cell_heap(heap_bytes, cell[0], seed, executor.page_size)
        executor.prepare(heap, plan)
        raws: Dict[str, List[dict]] = {s: [] for s in strategies}
        for rep in range(repeat):
            for s, raw in run_cell_repetition(executor, cell, strategies, faults, rep).items():
                raws[s].append(raw)
        return {"rows": cell_rows(cell, raws), "environment": env}
    finally:
        executor.close()
