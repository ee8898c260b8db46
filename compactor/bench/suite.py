"""The benchmark suite: one generated heap reset between runs, scenarios interleaved (A B C D A B C D ...) so that
machine drift hits all alike, the install floor measured in the same run, and per-repetition ratios against COPY."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import _native
from ..collector import STRATEGIES, collect
from ..device.adb import DeviceError
from ..errors import HeapCorruption
from ..heap import Heap, HeapSpec
from ..info import environment
from ..planning import plan as make_plan
from .claims import evaluate_claims
from .schema import SCHEMA_ID
from .speed import compaction_summary


class BenchError(Exception):
    """A benchmark that cannot run or whose heap failed verification; carries the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Scenario:
    strategy: str
    faults: str
    mutators: int

    @property
    def key(self) -> str:
        return f"{self.strategy}/{self.faults}/{self.mutators}"


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_mutators() -> tuple:
    """0, and as many mutators as leave one CPU to the GC thread (at least 1): no oversubscription."""
    return (0, max(1, usable_cpus() - 1))


@dataclass
class BenchConfig:
    heap: int = 256 << 20
    live: float = 0.5
    live_given: bool = False
    heap_given: bool = False
    heap_from: Optional[str] = None      # an HPROF dump
    hprof_heap: str = "app"
    heap_from_app: Optional[str] = None  # an app on the device whose heap is dumped
    garbage: str = "uniform"
    strategies: tuple = STRATEGIES
    faults: tuple = ("sigbus",)
    mutators: tuple = ()          # empty: default_mutators()
    batch: int = 64
    repeat: int = 5
    seed: int = 1
    floor_pages: int = 16384
    floor_repeat: int = 5
    runner: bool = False
    device: Optional[str] = None
    # collect() options passed to every run (CollectorConfig names): gc_cpu, mutator_cpus, backoff, move_min_run
    options: dict = None

    def __post_init__(self) -> None:
        if not self.mutators:
            self.mutators = default_mutators()
        if self.options is None:
            self.options = {}

    def scenarios(self) -> List[Scenario]:
        out = []
        for s in self.strategies:
            if s == "stw":
                out.append(Scenario("stw", "none", 0))
            else:
                out += [Scenario(s, f, m) for f in self.faults for m in self.mutators]
        return out


def memory_available() -> Optional[int]:
    """The memory this process may use: MemAvailable, bounded by the cgroup's memory.max and by the
    COMPACTOR_MEMORY_LIMIT environment variable (bytes), whichever is smallest."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                limits.append(int(text) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    env = os.environ.get("COMPACTOR_MEMORY_LIMIT")
    if env:
        limits.append(int(env))
    return min(limits) if limits else None


def check_memory(heap_bytes: int, available: Optional[int]) -> None:
    """Raises BenchError (status 2) when a heap of this size cannot fit in the memory available."""
    need = int(heap_bytes * 2.5) + (256 << 20)
    if available is not None and need > available:
        raise BenchError(f"a {heap_bytes >> 20} MiB heap needs about {need >> 20} MiB of memory (moving space, "
                         f"from-space, tables); only {available >> 20} MiB are available: use a smaller --heap", 2)


def virtualized() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " hypervisor" in f.read()
    except OSError:
        return False


def host_environment() -> dict:
    env = environment()
    env.update(where="host", model=platform.node(), emulated=False, virtualized=virtualized(),
               python=platform.python_version())
    return env


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


# ---- aggregation -------------------------------------------------------------------------------------------

def _median(xs):
    return float(statistics.median(xs)) if xs else None


def aggregate(scenarios: List[Scenario], raws: Dict[str, List[dict]], heap_bytes: int, live_bytes: int,
              unsupported: Dict[str, str]) -> List[dict]:
    runs = []
    copy_of = {}
    for sc in scenarios:
        if sc.strategy == "copy" and sc.key in raws:
            copy_of[(sc.faults, sc.mutators)] = [r["gc_thread_s"] for r in raws[sc.key]]
    first_fault = next((sc.faults for sc in scenarios if sc.strategy == "copy"), None)
    for sc in scenarios:
        row = {"strategy": sc.strategy, "faults": sc.faults, "mutators": sc.mutators, "key": sc.key,
               "heap_bytes": heap_bytes, "live_bytes": live_bytes}
        if sc.key in unsupported:
            row.update(status="unsupported", reason=unsupported[sc.key], verified=None)
            runs.append(row)
            continue
        reps = raws.get(sc.key, [])
        gc = [r["gc_thread_s"] for r in reps]
        order = np.argsort(gc)
        mid = reps[int(order[len(order) // 2])] if reps else {}
        base = copy_of.get((sc.faults, sc.mutators)) or copy_of.get((first_fault, sc.mutators)) \
            or copy_of.get((first_fault, 0))
        ratios = [g / b for g, b in zip(gc, base)] if base else []
        samples = [r.get("latency_samples_ns") for r in reps]
        samples = np.concatenate([s for s in samples if s is not None and len(s)]) if any(
            s is not None and len(s) for s in samples) else np.zeros(0, np.uint64)
        row.update(
            status="measured",
            gc_thread_s=gc, median=_median(gc), min=min(gc) if gc else None, max=max(gc) if gc else None,
            ratio_vs_copy=ratios, ratio_vs_copy_median=_median(ratios),
            pause_s=[r["pause_s"] for r in reps], pause_median=_median([r["pause_s"] for r in reps]),
            gc_time_ns={k: _median([r["gc_time_ns"][k] for r in reps]) for k in (mid.get("gc_time_ns") or {})},
            pages=mid.get("pages", {}), counters=mid.get("counters", {}),
            fault_latency_us=_percentiles_us(samples) if samples.size else (mid.get("fault_latency_us") or {}),
            fallback=sorted({r.get("fallback", "") for r in reps} - {""}),
            **load_measures(reps),
            verified=all(r.get("verified") for r in reps) and bool(reps),
            repetitions=len(reps),
        )
        row["_samples"] = samples
        runs.append(row)
    return runs


def _median_or_none(xs):
    return None if not xs or any(x is None for x in xs) else _median(xs)


def load_measures(reps: List[dict]) -> dict:
    """What the machine did around each repetition's concurrent phase (issue: MOVE under load): TLB-shootdown and
    function-call IPIs (system-wide, /proc/interrupts; null where the kernel has no such row), shootdowns per
    1000 installed pages, the GC thread's context switches, faults, ioctl counts and mean pages per ioctl, and
    how many CPUs the scenario needed and had."""
    irq = [r.get("interrupts") or {} for r in reps]
    tlb = [i.get("tlb_shootdowns") for i in irq]
    cal = [i.get("function_call") for i in irq]
    per_k = [None if t is None or not r["pages"]["total"] else 1000.0 * t / r["pages"]["total"]
             for t, r in zip(tlb, reps)]
    c = lambda key: _median([r["counters"].get(key, 0) for r in reps])  # noqa: E731
    ioctl_move, ioctl_copy = c("ioctl_move"), c("ioctl_copy")
    ps = reps[0].get("page_size") if reps else None
    out = {
        "interrupts": {"tlb_shootdowns": _median_or_none(tlb), "function_call": _median_or_none(cal)},
        "interrupts_per_repetition": {"tlb_shootdowns": tlb, "function_call": cal},
        "shootdowns_per_1000_pages": _median_or_none(per_k),
        "machine": {
            "gc_voluntary_switches": c("gc_voluntary_switches"), "gc_involuntary_switches": c("gc_involuntary_switches"),
            "minor_faults": c("minor_faults"), "major_faults": c("major_faults"),
            "ioctl_move": ioctl_move, "ioctl_copy": ioctl_copy,
            "mean_pages_per_move": (c("bytes_moved") / ioctl_move / ps) if ioctl_move and ps else None,
            "mean_pages_per_copy": (c("bytes_copied") / ioctl_copy / ps) if ioctl_copy and ps else None,
            "cpus": reps[0].get("cpus") if reps else None, "threads_needed": reps[0].get("threads_needed") if reps else None,
        },
    }
    sw = [r.get("swap") or {} for r in reps]
    if any(s.get("pages_paged_out") for s in sw):
        out["swap"] = {k: _median_or_none([s.get(k) for s in sw])
                       for k in ("pages_paged_out", "swap_ins", "swap_outs", "major_faults")}
    return out


def _percentiles_us(samples: np.ndarray) -> dict:
    """True order statistics of the pooled samples (numpy's 'inverted_cdf': an actual sample, never interpolated)."""
    s = np.sort(samples.astype(np.float64))
    q = lambda p: float(np.percentile(s, p, method="inverted_cdf")) / 1e3  # noqa: E731
    return {"samples": int(s.size), "p50": q(50), "p90": q(90), "p99": q(99), "p99.9": q(99.9),
            "max": float(s[-1]) / 1e3}


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
    if not env["userfaultfd"]:
        raise BenchError(f"userfaultfd is unavailable here, nothing to measure: {env['error']}", 2)
    check_memory(cfg.heap, session.memory_available() if session else memory_available())
    page_size = session.page_size if session else None
    tick = progress or (lambda *a: None)
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
                    raise BenchError(f"run {sc.key} repetition {rep + 1}: the heap failed verification: {e}", 3)
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
