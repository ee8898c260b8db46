"""The benchmark suite: one generated heap reset between runs, scenarios interleaved (A B C D A B C D ...) so that
machine drift hits all alike, the install floor measured in the same run, and per-repetition ratios against COPY."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import _native
from ..collector import STRATEGIES, collect
from ..device.adb import DeviceError
from ..errors import HeapCorruption
from ..heap import Heap, HeapSpec
from ..planning import plan as make_plan
from .claims import evaluate_claims
from .config import BenchConfig
from .env import check_memory, check_usable, default_mutators, host_environment, memory_available, usable_cpus
from .stats import aggregate, load_measures
from .types import BenchError, Scenario
from .schema import SCHEMA_ID
from .speed import compaction_summary

__all__ = ["BenchConfig", "BenchError", "Scenario", "STRATEGIES", "check_memory", "default_mutators",
           "host_environment", "load_measures", "memory_available", "run_suite", "runner_path", "usable_cpus"]


# ---- executors: where a collection runs ----------------------------------------------------------------------

class BindingExecutor:
    """Runs collections in this process through the binding (GIL released in the core)."""

    name = "binding"

    def __init__(self, heap: Heap, plan, batch: int, seed: int, options: Optional[dict] = None) -> None:
        self.heap, self.plan, self.batch, self.seed = heap, plan, batch, seed
        self.options = options or {}

    def run(self, sc: Scenario, rep: int) -> dict:
        r = collect(self.heap, sc.strategy, faults=sc.faults if sc.faults != "none" else "sigbus",
                    mutators=sc.mutators, batch=self.batch, seed=self.seed + rep, plan=self.plan, **self.options)
        raw = dict(r.raw)
        raw["latency_samples_ns"] = r.latency_samples_ns
        return raw


def runner_path() -> str:
    """The host build of compactor-runner: installed beside the native module (COMPACTOR_RUNNER overrides)."""
    here = os.environ.get("COMPACTOR_RUNNER") or os.path.join(os.path.dirname(_native.__file__), "bin",
                                                              "compactor-runner")
    if os.access(here, os.X_OK):
        return here
    raise BenchError(f"compactor-runner is not installed at {here} (reinstall with pip install .)", 2)


def runner_flags(options: dict) -> List[str]:
    """collect() options as compactor-runner flags (the runner validates them with the same checks)."""
    flags = []
    for name, value in options.items():
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        flags += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return flags


class DeviceExecutor:
    """Runs each collection with compactor-runner on an ADB device, from the plan pushed there."""

    name = "device"

    def __init__(self, session, batch: int, seed: int, options: Optional[dict] = None) -> None:
        self.session, self.batch, self.seed = session, batch, seed
        self.flags = runner_flags(options or {})

    def run(self, sc: Scenario, rep: int) -> dict:
        return self.session.collect(sc.strategy, sc.faults, sc.mutators, self.batch, self.seed + rep, self.flags)


class RunnerExecutor:
    """Runs each collection in the standalone native runner from the saved plan file (no Python in the loop)."""

    name = "runner"

    def __init__(self, plan_path: str, batch: int, seed: int, runner: Optional[str] = None,
                 options: Optional[dict] = None) -> None:
        self.plan_path, self.batch, self.seed = plan_path, batch, seed
        self.runner = runner or runner_path()
        self.flags = runner_flags(options or {})

    def run(self, sc: Scenario, rep: int) -> dict:
        cmd = [self.runner, self.plan_path, "--strategy", sc.strategy, "--mutators", str(sc.mutators),
               "--batch", str(self.batch), "--seed", str(self.seed + rep)] + self.flags
        if sc.faults != "none":
            cmd += ["--faults", sc.faults]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode == 3:
            raise HeapCorruption(p.stderr.strip())
        if p.returncode != 0:
            raise BenchError(f"compactor-runner failed ({p.returncode}): {p.stderr.strip()}", 1)
        raw = json.loads(p.stdout)["runs"][0]
        raw["latency_samples_ns"] = np.zeros(0, dtype=np.uint64)  # the runner reports percentiles only
        return raw


def measure_floor(pages: int, repeat: int) -> dict:
    floor = _native.measure_install_floor(pages, repeat)
    return {m["name"]: m for m in floor}


def measure_compaction_floor(heap: Heap, plan, repeat: int) -> dict:
    """Page copy, live-stride copy and compact_page per to-space page of this plan (the heap's pristine image)."""
    if heap.state != "pristine":
        heap.reset()
    return {m["name"]: m for m in _native.measure_compaction_floor(heap.space, plan.native, repeat)}


def real_heap(cfg: BenchConfig, path: str, page_size: Optional[int]) -> Heap:
    """The heap of an HPROF dump; --heap picks the number of copies (at least one), --live a live fraction."""
    from ..errors import HprofError

    live = cfg.live if cfg.live_given else None
    try:
        heap = Heap.from_hprof(path, heap=cfg.hprof_heap, live_fraction=live, seed=cfg.seed, page_size=page_size)
        if cfg.heap_given and cfg.heap > heap.used_end:
            heap = Heap.from_hprof(path, heap=cfg.hprof_heap, scale=max(1, cfg.heap // max(heap.used_end, 1)),
                                   live_fraction=live, seed=cfg.seed, page_size=page_size)
    except (HprofError, ValueError) as e:
        raise BenchError(f"--heap-from {path}: {e}", 2) from None
    return heap


def run_suite(cfg: BenchConfig, progress: Optional[Callable[[str, int, int], None]] = None,
              executor_factory: Optional[Callable] = None) -> dict:
    """Runs the whole benchmark and returns the report (the JSON document, minus raw samples)."""
    started = time.time()
    session = None
    if cfg.device:
        from ..device.session import DeviceSession

        try:
            session = DeviceSession(cfg.device)
        except DeviceError as e:
            raise BenchError(str(e), 2) from None
    try:
        return _run(cfg, session, started, progress, executor_factory)
    finally:
        if session is not None:
            session.close()


def _run(cfg: BenchConfig, session, started: float, progress, executor_factory) -> dict:
    env = session.environment() if session else host_environment()
    check_usable(env)
    check_memory(cfg.heap, session.memory_available() if session else memory_available())
    page_size = session.page_size if session else None
    tick = progress or (lambda *_: None)
    tick("generating the heap", 0, 1)
    dump = cfg.heap_from
    if cfg.heap_from_app:
        tick(f"dumping the heap of {cfg.heap_from_app} on the device", 0, 1)
        try:
            dump = session.dump_app_heap(cfg.heap_from_app)
        except DeviceError as e:
            raise BenchError(f"--heap-from-app {cfg.heap_from_app}: {e}", 2) from None
    if dump:
        heap = real_heap(cfg, dump, page_size)
    else:
        heap = Heap.generate(HeapSpec(size=cfg.heap, live_fraction=cfg.live, garbage=cfg.garbage, seed=cfg.seed),
                             page_size=page_size)
    tick("marking and planning", 0, 1)
    t0 = time.perf_counter()
    plan = make_plan(heap, page_size=page_size)
    plan_s = time.perf_counter() - t0
    tick("measuring the install floor", 0, 1)
    if session is not None and session.emulated:
        # Timings on an emulated device are labelled as no performance measurement: a token floor suffices.
        limits = session.measure_floor(min(cfg.floor_pages, 1024), 1)
    elif session is not None:
        limits = session.measure_floor(cfg.floor_pages, cfg.floor_repeat)
    else:
        limits = measure_floor(cfg.floor_pages, cfg.floor_repeat)

    scenarios = cfg.scenarios()
    unsupported = {}
    if not env["move"]:
        for sc in scenarios:
            if sc.strategy in ("move", "move-alloc"):
                unsupported[sc.key] = "unsupported on this kernel (no UFFD_FEATURE_MOVE)"
    if not env["sigbus"]:
        for sc in scenarios:
            if sc.faults == "sigbus":
                unsupported.setdefault(sc.key, "unsupported on this kernel (no UFFD_FEATURE_SIGBUS)")
    runnable = [sc for sc in scenarios if sc.key not in unsupported]

    tmpdir = None
    if executor_factory is not None:
        executor = executor_factory(heap, plan)
    elif session is not None or cfg.runner:
        tmpdir = tempfile.mkdtemp(prefix="compactor-bench-")
        path = os.path.join(tmpdir, "heap.plan")
        plan.save(path)
        if session is not None:
            session.push_plan(path)
            executor = DeviceExecutor(session, cfg.batch, cfg.seed, cfg.options)
        else:
            executor = RunnerExecutor(path, cfg.batch, cfg.seed, options=cfg.options)
    else:
        executor = BindingExecutor(heap, plan, cfg.batch, cfg.seed, cfg.options)
    raws: Dict[str, List[dict]] = {sc.key: [] for sc in runnable}
    total = cfg.repeat * len(runnable)
    done = 0
    try:
        tick("measuring the compaction floor", 0, 1)
        try:
            if session is not None:
                limits.update(session.measure_compaction_floor(1 if session.emulated else cfg.floor_repeat))
            else:
                limits.update(measure_compaction_floor(heap, plan, cfg.floor_repeat))
        except DeviceError as e:
            raise BenchError(f"compaction floor: {e}", 1) from None
        for rep in range(cfg.repeat):
            for sc in runnable:
                tick(f"{sc.key} (repetition {rep + 1}/{cfg.repeat})", done, total)
                try:
                    raw = executor.run(sc, rep)
                except HeapCorruption as e:
                    raise BenchError(f"run {sc.key} repetition {rep + 1}: the heap failed verification: {e}", 3) from e
                except DeviceError as e:
                    raise BenchError(f"run {sc.key} repetition {rep + 1}: {e}", 1) from None
                if not raw.get("verified"):
                    raise BenchError(f"run {sc.key} repetition {rep + 1}: the heap was not verified", 3)
                raws[sc.key].append(raw)
                done += 1
    finally:
        if tmpdir:
            for f in os.listdir(tmpdir):
                os.unlink(os.path.join(tmpdir, f))
            os.rmdir(tmpdir)
    tick("done", total, total)
    runs = aggregate(scenarios, raws, heap.heap_size, plan.live_bytes, unsupported)
    report = {
        "schema": SCHEMA_ID,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": "python -m compactor.bench",
        "environment": env,
        "config": {"heap_bytes": heap.heap_size,
                   "live_fraction": cfg.live if not dump or cfg.live_given else None,
                   "garbage": cfg.garbage if not dump else "real (HPROF)",
                   "strategies": list(cfg.strategies), "faults": list(cfg.faults), "mutators": list(cfg.mutators),
                   "batch": cfg.batch, "repeat": cfg.repeat, "seed": cfg.seed, "executor": executor.name,
                   "options": dict(cfg.options),
                   "page_size": plan.page_size,
                   "interleaved": True},
        "heap": {"objects": heap.count, "live_bytes": plan.live_bytes, "to_space_pages": plan.num_to_pages,
                 "dense_prefix_pages": plan.dense_prefix_pages, "plan_seconds": plan_s,
                 "empty_pages": int(heap.heap_size // plan.page_size - np.count_nonzero(plan.live_words.reshape(
                     -1, plan.page_size // 512).any(axis=1))),
                 "mean_refs_per_object": float(heap.num_refs.mean()) if heap.count else 0.0,
                 **({"hprof": heap.describe()["hprof"]} if heap.origin and "hprof" in heap.origin else {})},
        "limits": limits,
        "runs": runs,
        "elapsed_s": time.time() - started,
    }
    report["compaction"] = compaction_summary(limits, runs)
    report["claims"] = evaluate_claims(report)
    return report
