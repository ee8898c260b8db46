"""collect(): one garbage collection of a heap — marking, planning, then stop-the-world or concurrent compaction
over userfaultfd in the native core (GIL released) — and its verified result."""

from __future__ import annotations

import errno as _errno
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from . import _native, memory
from .errors import UffdError
from .heap import Heap
from .kernel_facts import warn_for_strategy
from .layout import CHUNK_SIZE
from .marking import mark
from .options import option_table
from .planning import Plan
from .planning import plan as make_plan
from .trace import DEFAULT_EVENTS, TraceSummary, collection_name, require_perfetto, write_trace

STRATEGIES = tuple(_native.STRATEGIES)  # defined once, in the core: stw, copy, move, move-alloc, hybrid
# inject=: errno values the core fails ioctls with, or the hooks that make the kernel answer wrongly.
_INJECT = {None: 0, "EAGAIN": _errno.EAGAIN, "EBUSY": _errno.EBUSY, "ENOMEM": _errno.ENOMEM,
           "EEXIST": _native.INJECT_DOUBLE_INSTALL, "POISON": _native.INJECT_POISON}
CollectorConfig = _native.CollectorConfig


# Every collect() option: the table's names, and watchdog (the alias of watchdog_seconds).
OPTIONS = tuple(o["name"] for o in option_table()) + ("watchdog",)
_DEFAULTS = CollectorConfig()


def make_config(strategy: str = _DEFAULTS.strategy, faults: str = _DEFAULTS.faults, mutators: int = _DEFAULTS.mutators,
                *, inject: Optional[str] = None, **options: Any) -> "_native.CollectorConfig":
    """A validated :class:`CollectorConfig`: the core's defaults with ``options`` set (names as its attributes:
    access, hops, write_fraction, think_ns, think, frame_hz, frame_duty, alloc_rate, tlab, pre_pause_ms, signal,
    signal_hz, batch,
    move_min_run ("auto" or a number of pages), claim_ahead, backoff, gc_cpu, mutator_cpus,
    release_chunk, swapped, seed, trace_events, watchdog_seconds (or watchdog), user_mode_only, max_samples,
    inject_errno,
    inject_fraction, stall_seconds, late_access_seconds, corrupt_new_object; :func:`option_table` describes
    each). Raises ValueError
    naming an unknown option, or the option out of range with the allowed range."""
    cfg = CollectorConfig()
    if inject not in _INJECT:
        raise ValueError(f"inject must be one of {', '.join(k for k in _INJECT if k)} or None, got {inject!r}")
    options.update(strategy=strategy, faults=faults, mutators=mutators)
    if inject is not None:  # the name of a hook or errno; inject_errno takes the raw number
        options["inject_errno"] = _INJECT[inject]
    for name, value in options.items():
        if name not in OPTIONS:
            raise ValueError(f"unknown collect() option {name!r}; the options are {', '.join(OPTIONS)}")
        if value is None:
            continue
        try:
            setattr(cfg, name, value)
        except TypeError:
            default = getattr(CollectorConfig(), name)
            raise ValueError(f"{name}={value!r} has the wrong type: it takes a {type(default).__name__} "
                             f"(default {default!r})") from None
    cfg.validate()
    return cfg


@dataclass
class CollectionResult:
    """What one collection did and measured. ``raw`` holds every field the core reported (the same fields the
    device runner prints). ``mutator_view`` is what the app saw: the share of to-space pages its mutators
    resolved, the time they spent resolving faults (sum, p50/p99, longest stall), their access rate during the
    phase against the rate just before the pause, ART's AppSlowPathDuringGc window (end of the pause to the last
    to-space page mapped), the time to suspend them for the pause, fresh pages by method (zeropage,
    zero_and_move, copy) and the handler's time per fresh page, objects and bytes allocated, and for UI mutators
    frames and late frames."""

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
    mutator_view: Dict[str, object]
    raw: Dict[str, Any]
    latency_samples_ns: np.ndarray = field(repr=False)
    # "full" or "young"; ``generational``: what the collection did by generation (see generational_metrics()).
    kind: str = "full"
    generational: Dict[str, Any] = field(default_factory=dict)
    # Every logged mutator write: rows of (identity, payload word, old value, new value), uint64.
    mutator_writes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 4), dtype=np.uint64))
    # trace_events > 0: each thread's recorded events (compactor.trace.thread_events reads it); else None.
    trace: Optional[Dict[str, Any]] = field(repr=False, default=None)
    # collect(trace=PATH): the file written.
    trace_file: Optional[TraceSummary] = None

    def to_dict(self) -> Dict[str, Any]:
        d = {k: v for k, v in self.raw.items() if k not in ("latency_samples_ns",)}
        d.update(verified=self.verified, timings=dict(self.timings), kind=self.kind, generational=self.generational)
        return d


def generational_metrics(plan: Plan, raw: Dict[str, Any]) -> Dict[str, Any]:
    """What a collection did by generation, with ART's metric names where they map: ``scanned_bytes``
    (YoungGcScannedBytes / FullGcScannedBytes: the marked bytes, plus the old objects on dirty cards for a young
    collection), ``freed_bytes`` (YoungGcFreedBytes: the used space minus the post-compact end), ``dirty_cards`` and
    ``card_objects`` (scanned as roots), the old generation's pages (wholly below old_gen_end) and how many held an
    object to update, the dense-prefix pages mapped back by MOVE and by COPY (the old generation and the page it ends
    on, for a young collection) against the pages compacted above it, and ``app_slow_path_ms``
    (AppSlowPathDuringYoungGc / ...FullGc)."""
    m = plan.marking
    ps = plan.page_size
    old_pages = plan.old_gen_end // ps
    updated = 0
    if old_pages:
        per_page = plan.live_words[: old_pages * ps // CHUNK_SIZE].reshape(old_pages, ps // CHUNK_SIZE)
        updated = int(np.count_nonzero(per_page.any(axis=1)))
    pages = raw["pages"]
    dense = int(pages.get("dense_move", 0)) + int(pages.get("dense_copy", 0))
    return {"kind": plan.kind, "old_gen_end": plan.old_gen_end, "scanned_bytes": m.scanned_bytes if m else 0,
            "freed_bytes": plan.heap.used_end - plan.post_compact_end,
            "dirty_cards": m.dirty_cards if m else 0,
            "card_objects": int(m.card_objects.sum()) if m is not None and m.card_objects is not None else 0,
            "old_pages": old_pages, "old_pages_updated": updated,
            "pages_mapped_back_move": int(pages.get("dense_move", 0)),
            "pages_mapped_back_copy": int(pages.get("dense_copy", 0)),
            "pages_compacted": int(pages["total"]) - dense,
            "app_slow_path_ms": raw.get("mutator_view", {}).get("app_slow_path_ms", 0.0)}


def check_collection_memory(heap: Heap, config: "_native.CollectorConfig", plan: Optional[Plan] = None) -> None:
    """Raises InsufficientMemory when one collection of ``heap`` with ``config`` needs more than a limit on this
    process leaves (MemAvailable, its cgroups' memory.max, RLIMIT_AS, COMPACTOR_MEMORY_LIMIT), naming the binding
    one with the numbers. The need is :func:`compactor.memory.collection_need` for this heap's state: what the
    first reset maps (moving space, pristine image) unless mapped already, the from-space and to-space pages of a
    concurrent strategy (the from-space: the plan's live bytes resident, one heap of address space), the plan
    tables when no plan is given, buffers, trace buffers and thread stacks."""
    need = memory.collection_need(
        heap.heap_size, space_mapped=heap.space_mapped, image_kept=heap.image_kept,
        keep_image=heap.keep_pristine_image,
        concurrent=config.strategy != "stw", mutators=int(config.mutators),
        live_bytes=None if plan is None else int(plan.live_bytes), planned=plan is not None,
        trace_events=int(config.trace_events))
    memory.check(need, f"a {config.strategy} collection of a {heap.heap_size // memory.MiB} MiB heap")


def collect(heap: Heap, strategy: str = _DEFAULTS.strategy, faults: str = _DEFAULTS.faults,
            mutators: int = _DEFAULTS.mutators, *, plan: Optional[Plan] = None, inject: Optional[str] = None,
            kind: Optional[str] = None, trace: Optional[str] = None, **options: Any) -> CollectionResult:
    """Collects ``heap``: resets it to its pristine state if needed, marks and plans (unless ``plan`` is given),
    compacts with ``strategy`` (one of :data:`STRATEGIES`), with faults delivered by ``faults`` ("sigbus" or
    "thread") to ``mutators`` native mutator threads, and verifies the result.

    ``options`` are :class:`CollectorConfig` attributes (see :func:`make_config`), e.g. ``batch=64``,
    ``gc_cpu=0, mutator_cpus=[1]``, ``backoff="futex"``, ``move_min_run=64`` (hybrid). Test hooks: ``inject``
    ("EAGAIN", "EBUSY", "ENOMEM" with ``inject_fraction``: that share of COPY/MOVE ioctls fails; "EEXIST": the
    kernel finds the GC's first page already mapped; "POISON": the GC poisons its first batch), ``stall_seconds``
    (the GC thread stalls holding a page), ``late_access_seconds`` (mutators touch an empty page after the phase).

    ``kind``: "full" (the default) or "young" (a generational heap, compactor.generations: marks from the roots and
    the old objects on dirty cards, compacts the mid and young generations, maps the old generation's pages back,
    updated only where an object starts on a dirty card; ``result.generational`` says what it did by generation);
    the plan's kind when ``plan`` is given.

    ``trace="file.perfetto-trace"`` records the collection's events (``trace_events`` per thread, default
    :data:`compactor.trace.DEFAULT_EVENTS`) and writes them as a Perfetto trace (:mod:`compactor.trace`; needs
    ``pip install 'compactor[trace]'``): ``.trace_file`` describes the file. Any ``trace_events`` > 0 alone
    keeps the events in ``.trace`` without writing a file.

    A MOVE strategy (move, move-alloc, hybrid) on a kernel that may have a known UFFDIO_MOVE bug warns once per
    process with :class:`~compactor.errors.KernelMoveWarning` (see :mod:`compactor.kernel_facts`).

    Raises HeapCorruption (naming the first differing object, or a double install), WatchdogTimeout,
    UffdUnavailable, ValueError (an option out of range, naming it and the allowed range), InsufficientMemory
    (before anything is marked or mapped, when the collection would not fit under this process's memory limits:
    :func:`check_collection_memory`), UffdError with errno ENOMEM naming the binding limit when the kernel refuses
    pages inside the phase (a cgroup at its memory.max OOM-kills the process instead: see the README).
    """
    if trace is not None:
        require_perfetto()  # before anything runs
        options["trace_events"] = options.get("trace_events") or DEFAULT_EVENTS
    config = make_config(strategy, faults, mutators, inject=inject, **options)
    if plan is not None and plan.heap is not heap:
        raise ValueError("the plan was made for another heap")
    if plan is not None and kind is not None and plan.kind != kind:
        raise ValueError(f"kind={kind!r}, but the plan is a {plan.kind} collection's")
    check_collection_memory(heap, config, plan)
    warn_for_strategy(config.strategy)
    timings: Dict[str, float] = {}
    if plan is None:
        t0 = time.perf_counter()
        m = mark(heap, kind or "full")
        t1 = time.perf_counter()
        plan = make_plan(heap, marking=m)
        t2 = time.perf_counter()
        timings["marking"] = t1 - t0
        timings["planning"] = t2 - t1
    if heap.state != "pristine":
        heap.reset()
    digest_before = heap.pristine_digest()[0]
    if plan.expected_digest is not None and plan.expected_digest != digest_before:
        raise ValueError("the plan's expected digest does not match this heap")
    heap.state = "collecting"
    try:
        raw = _native.collect(heap.space, plan.native, heap.native_table, digest_before, config)
    except UffdError as e:
        if e.errno != _errno.ENOMEM or config.inject_errno == _errno.ENOMEM:  # an injected ENOMEM is no limit's
            raise
        lim = memory.binding_limit(memory.MEMORY)  # the limit the kernel refused the pages under, named
        where = (f"; this process may use {lim.available // memory.MiB} MiB more under {lim.name} ({lim.source}):"
                 " use a smaller heap or raise the limit") if lim is not None else ""
        raise UffdError(e.errno, f"out of memory inside the concurrent phase: {e}{where}", e.op, e.done) from e
    finally:
        heap.state = "compacted"
    timings["pause"] = raw["pause_s"]
    timings["compaction"] = raw["gc_thread_s"]
    samples = raw.pop("latency_samples_ns")
    writes = raw.pop("mutator_writes")
    events = raw.pop("trace", None)
    written = write_trace(trace, [(collection_name(raw), events)]) if trace is not None and events else None
    return CollectionResult(verified=bool(raw["verified"]), strategy=raw["strategy"], faults=raw["faults"],
                            mutators=int(raw["mutators"]), timings=timings, gc_thread_seconds=raw["gc_thread_s"],
                            pause_seconds=raw["pause_s"], pages=raw["pages"], fault_latency_us=raw["fault_latency_us"],
                            counters=raw["counters"], fallback=raw["fallback"], mutator_view=raw["mutator_view"],
                            raw=raw, latency_samples_ns=samples, mutator_writes=writes, kind=plan.kind,
                            generational=generational_metrics(plan, raw), trace=events, trace_file=written)
