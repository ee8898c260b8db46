"""Executors: where a collection runs. One interface (Executor), three implementations: this process through the
binding, the host's native compactor-runner, compactor-runner on an ADB device."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from typing import Dict, List, Optional

import numpy as np

from .. import _native
from .. import memory as _memory
from .. import profiles as _profiles
from ..collector import collect, generational_metrics
from ..device.adb import DeviceError
from ..errors import HeapCorruption
from ..heap import Heap
from ..options import option_table
from ..trace import DEFAULT_EVENTS
from .env import host_environment, memory_available
from .types import BenchError, RunFailed, Scenario


def runner_flags(options: dict) -> List[str]:
    """collect() options as compactor-runner flags, from the options table (the runner validates them with the
    same checks): bools as --name / --no-name, CPU lists comma-separated."""
    table = {o["name"]: o for o in option_table()}
    table["watchdog"] = table["watchdog_seconds"]
    flags = []
    for name, value in options.items():
        if value is None:
            continue
        if name not in table:
            raise BenchError(f"unknown collect() option {name!r}; the options are {', '.join(sorted(table))}", 2)
        o = table[name]
        if o["type"] == "bool":
            flags.append(o["flag"] if value else "--no-" + o["flag"][2:])
        else:
            flags += [o["flag"], ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return flags


def runner_path() -> str:
    """The host build of compactor-runner: installed beside the native module (COMPACTOR_RUNNER overrides)."""
    here = os.environ.get("COMPACTOR_RUNNER") or os.path.join(os.path.dirname(_native.__file__), "bin",
                                                              "compactor-runner")
    if os.access(here, os.X_OK):
        return here
    raise BenchError(f"compactor-runner is not installed at {here} (reinstall with pip install .)", 2)


def measure_floor(pages: int, repeat: int) -> dict:
    return {m["name"]: m for m in _native.measure_install_floor(pages, repeat)}


def measure_compaction_floor(heap: Heap, plan, repeat: int) -> dict:
    """Page copy, live-stride copy and compact_page per to-space page of this plan (the heap's pristine image)."""
    if heap.state != "pristine":
        heap.reset()
    return {m["name"]: m for m in _native.measure_compaction_floor(heap.space, plan.native, repeat)}


class Executor(ABC):
    """Where the suite runs: the environment, the floors, and one collection of a scenario per call."""

    name = "?"
    page_size: Optional[int] = None  # None: the host's

    def __init__(self, batch: int, seed: int, options: Optional[dict] = None) -> None:
        self.batch, self.seed, self.options = batch, seed, dict(options or {})
        self.heap: Optional[Heap] = None  # set by prepare()
        self.plan = None
        self.plans: dict = {}  # by collection kind, set by prepare()
        self.trace_events = 0  # > 0: every run records its events (the raw result's "trace")

    def options_for(self, sc: Scenario) -> dict:
        """The collect() options of one scenario: its mutator profile's, overridden by the options given."""
        opts = _profiles.options_for(sc.profile, sc.mutators, self.options)
        if self.trace_events:
            opts["trace_events"] = self.trace_events
        return opts

    @abstractmethod
    def environment(self) -> dict: ...

    @abstractmethod
    def memory_available(self) -> Optional[int]: ...

    def dump_app_heap(self, package: str) -> str:
        raise BenchError(f"--heap-from-app {package}: dumps an app's heap on a device: give --device SERIAL too", 2)

    @abstractmethod
    def install_floor(self, pages: int, repeat: int) -> dict: ...

    def prepare(self, heap: Heap, plan, plans: Optional[dict] = None) -> None:
        """The heap and plan every later call works on; `plans`: the plan of each collection kind a scenario may
        ask for (default: `plan`'s kind only)."""
        self.heap, self.plan = heap, plan
        self.plans = dict(plans or {plan.kind: plan})

    def plan_for(self, sc: Scenario):
        """The prepared plan of the scenario's collection kind; RunFailed when none was prepared (only the binding
        runs young plans on a device: its executor carries one full plan file)."""
        p = self.plans.get(sc.kind)
        if p is None:
            raise RunFailed(f"{sc.key}: no {sc.kind} plan was prepared for the {self.name} executor", 2)
        return p

    @abstractmethod
    def compaction_floor(self, repeat: int) -> dict: ...

    @abstractmethod
    def run(self, sc: Scenario, rep: int) -> dict:
        """One collection; raises HeapCorruption when the heap fails verification, RunFailed when it cannot run."""

    def close(self) -> None:
        """Releases what prepare() and the constructor took (the base keeps only references)."""
        self.heap, self.plan = None, None


class _HostExecutor(Executor):
    def environment(self) -> dict:
        return host_environment()

    def memory_available(self) -> Optional[int]:
        return memory_available()

    def install_floor(self, pages: int, repeat: int) -> dict:
        return measure_floor(pages, repeat)

    def compaction_floor(self, repeat: int) -> dict:
        assert self.heap is not None, "prepare() comes first"
        return measure_compaction_floor(self.heap, self.plan, repeat)


class BindingExecutor(_HostExecutor):
    """Runs collections in this process through the binding (GIL released in the core)."""

    name = "binding"

    def run(self, sc: Scenario, rep: int) -> dict:
        assert self.heap is not None, "prepare() comes first"
        r = collect(self.heap, sc.strategy, faults=sc.faults if sc.faults != "none" else "sigbus",
                    mutators=sc.mutators, batch=self.batch, seed=self.seed + rep, plan=self.plan_for(sc),
                    **self.options_for(sc))
        raw = dict(r.raw)
        raw["kind"], raw["generational"] = r.kind, r.generational
        raw["latency_samples_ns"] = r.latency_samples_ns
        if r.trace is not None:
            raw["trace"] = r.trace
        return raw


class _PlanFile:
    """The plan saved to a private temporary folder, removed on close."""

    def __init__(self) -> None:
        self.dir: Optional[str] = None

    def save(self, plan, name: str = "heap.plan") -> str:
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="compactor-bench-")
        path = os.path.join(self.dir, name)
        plan.save(path)
        return path

    def close(self) -> None:
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class RunnerExecutor(_HostExecutor):
    """Runs each collection in the standalone native runner from the saved plan file (no Python in the loop)."""

    name = "runner"

    def __init__(self, batch: int, seed: int, options: Optional[dict] = None, runner: Optional[str] = None) -> None:
        super().__init__(batch, seed, options)
        self.runner = runner
        self.flags = runner_flags(self.options)  # refuses an unknown option before anything runs
        self.plan_file = _PlanFile()
        self.plan_paths: Dict[str, str] = {}  # one plan file per collection kind, set by prepare()

    def prepare(self, heap: Heap, plan, plans: Optional[dict] = None) -> None:
        super().prepare(heap, plan, plans)
        self.runner = self.runner or runner_path()
        self.plan_paths = {k: self.plan_file.save(p, f"{k}.plan") for k, p in self.plans.items()}

    def run(self, sc: Scenario, rep: int) -> dict:
        assert self.runner is not None and self.plan_paths, "prepare() comes first"
        plan = self.plan_for(sc)
        cmd = [self.runner, self.plan_paths[sc.kind], "--strategy", sc.strategy, "--mutators", str(sc.mutators),
               "--batch", str(self.batch), "--seed", str(self.seed + rep)] + runner_flags(self.options_for(sc))
        if sc.faults != "none":
            cmd += ["--faults", sc.faults]
        oom_before = _memory.oom_kills()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode == 3:
            raise HeapCorruption(p.stderr.strip())
        if p.returncode < 0:  # a signal: the OOM killer (named with its cgroup counter) or another
            raise BenchError(f"compactor-runner {_memory.describe_death(p.returncode, oom_before)}: "
                             f"{p.stderr.strip() or 'no message'}", 1)
        if p.returncode != 0:
            raise BenchError(f"compactor-runner failed ({p.returncode}): {p.stderr.strip()}", 1)
        raw = json.loads(p.stdout)["runs"][0]
        raw["latency_samples_ns"] = np.zeros(0, dtype=np.uint64)  # the runner reports percentiles only
        raw["kind"], raw["generational"] = plan.kind, generational_metrics(plan, raw)
        return raw

    def close(self) -> None:
        self.plan_file.close()


class DeviceExecutor(Executor):
    """Runs each collection with compactor-runner on an ADB device, from the plan pushed there."""

    name = "device"

    def __init__(self, serial: str, batch: int, seed: int, options: Optional[dict] = None) -> None:
        super().__init__(batch, seed, options)
        from ..device.session import DeviceSession

        try:
            self.session = DeviceSession(serial)
        except DeviceError as e:
            raise BenchError(str(e), 2) from None
        self.flags = runner_flags(self.options)
        self.page_size = self.session.page_size
        self.plan_file = _PlanFile()

    def environment(self) -> dict:
        return self.session.environment()

    def memory_available(self) -> Optional[int]:
        return self.session.memory_available()

    def dump_app_heap(self, package: str) -> str:
        try:
            return self.session.dump_app_heap(package)
        except DeviceError as e:
            raise BenchError(f"--heap-from-app {package}: {e}", 2) from None

    def install_floor(self, pages: int, repeat: int) -> dict:
        if self.session.emulated:
            # Timings on an emulated device are labelled as no performance measurement: a token floor suffices.
            return self.session.measure_floor(min(pages, 1024), 1)
        return self.session.measure_floor(pages, repeat)

    def prepare(self, heap: Heap, plan, plans: Optional[dict] = None) -> None:
        # one plan file on the device, the full collection's: young plans are not prepared
        super().prepare(heap, plan, {k: p for k, p in (plans or {plan.kind: plan}).items() if k == "full"})
        self.session.push_plan(self.plan_file.save(plan))

    def compaction_floor(self, repeat: int) -> dict:
        try:
            return self.session.measure_compaction_floor(1 if self.session.emulated else repeat)
        except DeviceError as e:
            raise BenchError(f"compaction floor: {e}", 1) from None

    def run(self, sc: Scenario, rep: int) -> dict:
        self.plan_for(sc)  # refuses a young scenario
        try:
            return self.session.collect(sc.strategy, sc.faults, sc.mutators, self.batch, self.seed + rep,
                                        runner_flags(self.options_for(sc)))
        except DeviceError as e:
            raise RunFailed(str(e), 1) from None

    def close(self) -> None:
        try:
            self.plan_file.close()
        finally:
            self.session.close()


def executor_for(cfg) -> Executor:
    """The executor a BenchConfig asks for: --device, --runner, else the binding."""
    if cfg.device:
        ex: Executor = DeviceExecutor(cfg.device, cfg.batch, cfg.seed, cfg.options)
    elif cfg.runner:
        ex = RunnerExecutor(cfg.batch, cfg.seed, cfg.options)
    else:
        ex = BindingExecutor(cfg.batch, cfg.seed, cfg.options)
    ex.trace_events = DEFAULT_EVENTS if cfg.trace else 0
    return ex
