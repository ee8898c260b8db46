"""The benchmark suite: one generated heap reset between runs, scenarios interleaved (A B C D A B C D ...) so that
machine drift hits all alike, the install floor measured in the same run, and per-repetition ratios against COPY.

The driver: where the collections run is the executor's business (compactor.bench.executors)."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import profiles as _profiles
from ..collector import STRATEGIES
from ..errors import HeapCorruption
from ..generations import describe as describe_generations
from ..kernel_facts import warn_for_strategy
from ..planning import plan as make_plan
from ..trace import TraceWriter, collection_name
from .claims import evaluate_claims
from .config import BenchConfig
from .env import check_memory, check_usable, default_mutators, host_environment, memory_available, usable_cpus
from .executors import Executor, executor_for, runner_path
from .heaps import build_heap
from .schema import SCHEMA_ID
from .speed import compaction_summary
from .stats import aggregate, load_measures
from .types import BenchError, RunFailed, Scenario

__all__ = ["BenchConfig", "BenchError", "Scenario", "STRATEGIES", "check_memory", "default_mutators",
           "host_environment", "load_measures", "memory_available", "run_suite", "runner_path", "usable_cpus"]


def run_suite(cfg: BenchConfig, progress: Optional[Callable[[str, int, int], None]] = None,
              executor: Optional[Executor] = None) -> dict:
    """Runs the whole benchmark and returns the report (the JSON document, minus raw samples)."""
    started = time.time()
    executor = executor or executor_for(cfg)
    try:
        return _run(cfg, executor, started, progress or (lambda *_: None))
    finally:
        executor.close()


def unsupported_scenarios(scenarios: List[Scenario], env: dict) -> Dict[str, str]:
    """The scenarios this kernel cannot run, with the reason."""
    unsupported = {}
    if not env["move"]:
        for sc in scenarios:
            if sc.strategy in ("move", "move-alloc"):
                unsupported[sc.key] = "unsupported on this kernel (no UFFD_FEATURE_MOVE)"
    if not env["sigbus"]:
        for sc in scenarios:
            if sc.faults == "sigbus":
                unsupported.setdefault(sc.key, "unsupported on this kernel (no UFFD_FEATURE_SIGBUS)")
    return unsupported


def run_repetitions(executor: Executor, runnable: List[Scenario], repeat: int, tick,
                    trace: Optional[TraceWriter] = None) -> Dict[str, List[dict]]:
    """Every runnable scenario once per repetition, interleaved; a heap that fails verification stops the suite.
    With `trace`, each run's events go there (a process track per run)."""
    raws: Dict[str, List[dict]] = {sc.key: [] for sc in runnable}
    total, done = repeat * len(runnable), 0
    for rep in range(repeat):
        for sc in runnable:
            tick(f"{sc.key} (repetition {rep + 1}/{repeat})", done, total)
            try:
                raw = executor.run(sc, rep)
            except HeapCorruption as e:
                raise BenchError(f"run {sc.key} repetition {rep + 1}: the heap failed verification: {e}", 3) from e
            except RunFailed as e:
                raise BenchError(f"run {sc.key} repetition {rep + 1}: {e}", 1) from None
            if not raw.get("verified"):
                raise BenchError(f"run {sc.key} repetition {rep + 1}: the heap was not verified", 3)
            events = raw.pop("trace", None)
            if trace is not None and events:
                trace.add(collection_name(raw, f"{sc.profile} #{rep + 1}"), events)
            raws[sc.key].append(raw)
            done += 1
    tick("done", total, total)
    return raws


def _run(cfg: BenchConfig, executor: Executor, started: float, tick) -> dict:
    env = executor.environment()
    check_usable(env)
    for strategy in sorted({sc.strategy for sc in cfg.scenarios()}):  # once per process, with the facts of the
        warn_for_strategy(strategy, env.get("move_kernel"))           # kernel the runs use (host or device)
    check_memory(cfg.heap, executor.memory_available())
    heap, dump = build_heap(cfg, executor, tick)
    tick("marking and planning", 0, 1)
    t0 = time.perf_counter()
    plan = make_plan(heap, page_size=executor.page_size)  # the full plan: the floors and the "heap" section's
    plan_s = time.perf_counter() - t0
    plans = {"full": plan}
    if "young" in cfg.gc:  # made once, from the same heap; every young scenario runs it
        plans["young"] = make_plan(heap, page_size=executor.page_size, kind="young")
    tick("measuring the install floor", 0, 1)
    limits = executor.install_floor(cfg.floor_pages, cfg.floor_repeat)
    scenarios = cfg.scenarios()
    unsupported = unsupported_scenarios(scenarios, env)
    executor.prepare(heap, plan, plans)
    tick("measuring the compaction floor", 0, 1)
    limits.update(executor.compaction_floor(cfg.floor_repeat))
    runnable = [sc for sc in scenarios if sc.key not in unsupported]
    trace = TraceWriter(cfg.trace) if cfg.trace else None
    try:
        raws = run_repetitions(executor, runnable, cfg.repeat, tick, trace)
    except BaseException:
        if trace is not None:
            trace.abort()
        raise
    trace_summary = vars(trace.close()) if trace is not None else None
    runs = aggregate(scenarios, raws, heap.heap_size, {k: p.live_bytes for k, p in plans.items()}, unsupported)
    report = {
        "schema": SCHEMA_ID,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": "python -m compactor.bench",
        "environment": env,
        "config": run_config(cfg, heap, plan, dump, executor.name),
        "heap": heap_section(heap, plan, plan_s, plans.get("young")),
        "limits": limits,
        "runs": runs,
        "elapsed_s": time.time() - started,
    }
    if trace_summary is not None:
        report["trace"] = trace_summary
    report["compaction"] = compaction_summary(limits, runs)
    report["claims"] = evaluate_claims(report)
    return report


def run_config(cfg: BenchConfig, heap, plan, dump: Optional[str], executor_name: str) -> dict:
    """The report's "config" section."""
    return {"heap_bytes": heap.heap_size,
            "live_fraction": None if cfg.generations else cfg.live if not dump or cfg.live_given else None,
            "garbage": cfg.garbage if not dump else "real (HPROF)",
            "strategies": list(cfg.strategies), "faults": list(cfg.faults), "mutators": list(cfg.mutators),
            "batch": cfg.batch, "repeat": cfg.repeat, "seed": cfg.seed, "executor": executor_name,
            "options": dict(cfg.options),
            "profiles": list(cfg.profiles),
            "profile_options": {p: _profiles.options_for(p, 1, cfg.options) for p in cfg.profiles},
            "page_size": plan.page_size,
            "interleaved": True,
            "gc": list(cfg.gc),
            "generations": dict(cfg.generations) if cfg.generations else None}


def heap_section(heap, plan, plan_s: float, young_plan=None) -> dict:
    """The report's "heap" section (a generational heap's generations and, with --gc young, the young plan)."""
    extra: dict = {}
    if heap.generations is not None:
        extra["generations"] = describe_generations(heap)
    if young_plan is not None:
        extra["young_plan"] = {"to_space_pages": young_plan.num_to_pages, "old_gen_end": young_plan.old_gen_end,
                               "dense_prefix_pages": young_plan.dense_prefix_pages,
                               "live_bytes": young_plan.live_bytes, "post_compact_end": young_plan.post_compact_end}
    return {**extra, "objects": heap.num_objects, "live_bytes": plan.live_bytes, "to_space_pages": plan.num_to_pages,
            "dense_prefix_pages": plan.dense_prefix_pages, "plan_seconds": plan_s,
            "empty_pages": int(heap.heap_size // plan.page_size - np.count_nonzero(plan.live_words.reshape(
                -1, plan.page_size // 512).any(axis=1))),
            "mean_refs_per_object": float(heap.num_refs.mean()) if heap.num_objects else 0.0,
            **({"hprof": heap.describe()["hprof"]} if heap.origin and "hprof" in heap.origin else {})}
