"""collect(): one garbage collection of a heap — marking, planning, then stop-the-world or concurrent compaction
over userfaultfd in the native core (GIL released) — and its verified result."""

from __future__ import annotations

import errno as _errno
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from . import _native
from .planning import Plan, plan as make_plan
from .marking import mark

STRATEGIES = ("stw", "copy", "move", "move-alloc")
FAULT_MODES = ("sigbus", "thread")
ACCESS_PATTERNS = ("random", "sequential", "hot-set")
_INJECT = {None: 0, "EAGAIN": _errno.EAGAIN, "EBUSY": _errno.EBUSY, "ENOMEM": _errno.ENOMEM}


@dataclass
class CollectionResult:
    """What one collection did and measured. ``raw`` holds every field the core reported (the same fields the
    device runner prints)."""

    verified: bool
    strategy: str
    faults: str
    mutators: int
    timings: Dict[str, float]
    gc_thread_seconds: float
    pause_seconds: float
    pages: Dict[str, int]
    fault_latency_us: Dict[str, float]
    counters: Dict[str, int]
    fallback: str
    raw: dict
    latency_samples_ns: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.raw.items() if k not in ("latency_samples_ns",)}
        d.update(verified=self.verified, timings=dict(self.timings))
        return d


def collect(heap, strategy: str = "stw", faults: str = "sigbus", mutators: int = 0, batch: int = 64,
            access: str = "random", seed: Optional[int] = None, *, plan: Optional[Plan] = None,
            watchdog: float = 10.0, user_mode_only: bool = True, write_fraction: float = 0.05,
            inject: Optional[str] = None, inject_fraction: float = 0.0, stall_seconds: float = 0.0,
            release_chunk: int = 2 << 20) -> CollectionResult:
    """Collects ``heap``: resets it to its pristine state if needed, marks and plans (unless ``plan`` is given),
    compacts with ``strategy`` ("stw", "copy", "move", "move-alloc"), with faults delivered by ``faults``
    ("sigbus" or "thread") to ``mutators`` native mutator threads, and verifies the result.

    Raises HeapCorruption (naming the first differing object), WatchdogTimeout, UffdUnavailable, ValueError.
    ``inject`` ("EAGAIN", "EBUSY", "ENOMEM") with ``inject_fraction`` makes that share of COPY/MOVE ioctls fail
    (a test hook); ``stall_seconds`` makes the GC thread stall holding a page (a test hook for the watchdog).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if faults not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {faults!r}; choose one of {', '.join(FAULT_MODES)}")
    if access not in ACCESS_PATTERNS:
        raise ValueError(f"unknown access pattern {access!r}; choose one of {', '.join(ACCESS_PATTERNS)}")
    if inject not in _INJECT:
        raise ValueError(f"inject must be one of EAGAIN, EBUSY, ENOMEM or None, got {inject!r}")
    if isinstance(mutators, bool) or not isinstance(mutators, int) or mutators < 0:
        raise ValueError(f"mutators must be a non-negative int, got {mutators!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int (pages per ioctl), got {batch!r}")
    timings: Dict[str, float] = {}
    if plan is None:
        t0 = time.perf_counter()
        m = mark(heap)
        t1 = time.perf_counter()
        plan = make_plan(heap, marking=m)
        t2 = time.perf_counter()
        timings["marking"] = t1 - t0
        timings["planning"] = t2 - t1
    elif plan.heap is not heap:
        raise ValueError("the plan was made for another heap")
    if heap.state != "pristine":
        heap.reset()
    digest_before = heap.pristine_digest()[0]
    if plan.expected_digest is not None and plan.expected_digest != digest_before:
        raise ValueError("the plan's expected digest does not match this heap")
    heap.state = "collecting"
    try:
        raw = _native.collect(heap.space, plan.native, heap.native_table, digest_before, strategy, faults, mutators,
                              batch, access, 1 if seed is None else int(seed), float(watchdog), bool(user_mode_only),
                              float(write_fraction), float(inject_fraction), _INJECT[inject], float(stall_seconds),
                              int(release_chunk))
    finally:
        heap.state = "compacted"
    timings["pause"] = raw["pause_s"]
    timings["compaction"] = raw["gc_thread_s"]
    samples = raw.pop("latency_samples_ns")
    return CollectionResult(verified=bool(raw["verified"]), strategy=raw["strategy"], faults=raw["faults"],
                            mutators=int(raw["mutators"]), timings=timings, gc_thread_seconds=raw["gc_thread_s"],
                            pause_seconds=raw["pause_s"], pages=raw["pages"], fault_latency_us=raw["fault_latency_us"],
                            counters=raw["counters"], fallback=raw["fallback"], raw=raw, latency_samples_ns=samples)
