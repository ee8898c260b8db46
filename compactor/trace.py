"""Perfetto traces of collections: the events a traced collection recorded (the ``trace_events`` option; the
result's ``trace`` section, from the binding or from compactor-runner's JSON) written as a Perfetto trace with the
``perfetto`` package's trace builder (``pip install 'compactor[trace]'``). Open the file at https://ui.perfetto.dev.

Each collection is a process track; each of its threads (collector, GC thread, mutators, fault thread) a thread
track with nested slices (pause, gc run > compact / install, fault > wait / compact / install, ...); the pages
mapped and the phase's TLB shootdowns are counter tracks of the process."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

# Events per thread a trace asks for when none is given (24 bytes each: 6 MiB per thread).
DEFAULT_EVENTS = 1 << 18
INSTALL_HINT = "pip install 'compactor[trace]'"

# The annotations of a slice's Begin and End events, by kind: (name of arg0, name of arg1); None: not annotated.
_BEGIN_ARGS: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    "gc run": ("top_page", None), "compact": ("page", None), "install": ("first_page", "pages"),
    "release": (None, "MiB"), "fault": ("page", None), "wait": ("page", None), "fresh page": ("page", None)}
_END_ARGS: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    "gc run": ("first_page", "pages"), "compact": ("first_page", "pages"), "install": (None, "installed_pages")}


class PerfettoMissing(ImportError):
    """The ``perfetto`` package (the trace builder) is not installed."""


def _protos() -> Any:
    try:
        from perfetto.protos.perfetto.trace import perfetto_trace_pb2
        from perfetto.trace_builder import proto_builder  # noqa: F401  (the builder this module writes with)
    except ImportError as e:
        raise PerfettoMissing(f"writing a Perfetto trace needs the perfetto package ({e}): {INSTALL_HINT}") from None
    return perfetto_trace_pb2


def require_perfetto() -> None:
    """Raises PerfettoMissing (naming ``pip install 'compactor[trace]'``) unless traces can be written here."""
    _protos()


@dataclass
class ThreadEvents:
    """One thread's events: rows of the ``columns`` (ts_ns, kind, phase, arg0, arg1, method, errno), uint64."""

    name: str
    dropped: int
    events: np.ndarray


def thread_events(trace: Mapping[str, Any]) -> List[ThreadEvents]:
    """The threads of a result's ``trace`` section (numpy arrays from the binding, lists from the runner's JSON)."""
    ncol = len(trace["columns"])
    return [ThreadEvents(str(t["name"]), int(t["dropped"]),
                         np.asarray(t["events"], dtype=np.uint64).reshape(-1, ncol)) for t in trace["threads"]]


@dataclass
class TraceSummary:
    path: str
    collections: int
    events: int
    dropped: int
    bytes: int
    write_seconds: float


class TraceWriter:
    """One trace file of many collections, written atomically: packets stream into a temporary file beside
    ``path``, renamed over it by :meth:`close` (:meth:`abort` removes it). Use as a context manager."""

    def __init__(self, path: str) -> None:
        self._pb = _protos()
        from perfetto.trace_builder.proto_builder import StreamingTraceProtoBuilder

        self.path = os.path.abspath(path)
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot write the trace {path}: the folder {folder} does not exist")
        fd, self._tmp = tempfile.mkstemp(prefix=".trace-", dir=folder)
        self._file: Optional[IO[bytes]] = os.fdopen(fd, "wb")
        self._builder = StreamingTraceProtoBuilder(self._file)
        self.collections = self.events = self.dropped = 0
        self._seconds = 0.0

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:
            self.abort()
        elif self._file is not None:
            self.close()

    def _packet(self, ts: Optional[int] = None) -> Any:
        p = self._builder.create_packet()
        p.trusted_packet_sequence_id = 1
        if ts is not None:
            p.timestamp = ts
        return p

    def _write(self, p: Any) -> None:
        self._builder.write_packet(p)

    def add(self, name: str, trace: Mapping[str, Any]) -> None:
        """One collection (a result's ``trace`` section) as a process track named ``name``."""
        t0 = time.perf_counter()
        pb = self._pb
        kinds, methods = list(trace["kinds"]), list(trace["methods"])
        begin, end, counter = (list(trace["phases"]).index(x) for x in ("begin", "end", "counter"))
        self.collections += 1
        pid = self.collections
        base = pid << 32
        p = self._packet()
        p.track_descriptor.uuid = base
        p.track_descriptor.process.pid = pid
        p.track_descriptor.process.process_name = name
        self._write(p)
        counters: Dict[int, int] = {}  # kind -> counter track uuid
        for i, th in enumerate(thread_events(trace)):
            uuid = base + 1 + i
            p = self._packet()
            p.track_descriptor.uuid = uuid
            p.track_descriptor.parent_uuid = base
            p.track_descriptor.thread.pid = pid
            p.track_descriptor.thread.tid = pid * 1000 + i
            p.track_descriptor.thread.thread_name = th.name
            self._write(p)
            self.events += len(th.events)
            self.dropped += th.dropped
            stack: List[str] = []
            last = 0
            for ts, kind, phase, arg0, arg1, method, err in th.events.tolist():
                k = kinds[kind]
                if phase == counter:
                    if kind not in counters:
                        counters[kind] = base + (1 << 20) + kind
                        p = self._packet()
                        p.track_descriptor.uuid = counters[kind]
                        p.track_descriptor.parent_uuid = base
                        p.track_descriptor.name = k
                        p.track_descriptor.counter.SetInParent()
                        self._write(p)
                    p = self._packet(ts)
                    p.track_event.type = pb.TrackEvent.TYPE_COUNTER
                    p.track_event.track_uuid = counters[kind]
                    p.track_event.counter_value = arg0
                    self._write(p)
                    continue
                last = max(last, ts)  # a thread's slices in order (a nested handler's lie between its parent's)
                if phase == end and not stack:
                    continue
                p = self._packet(last)
                ev = p.track_event
                ev.track_uuid = uuid
                if phase == begin:
                    stack.append(k)
                    ev.type = pb.TrackEvent.TYPE_SLICE_BEGIN
                    ev.name = _slice_name(k, arg0, arg1, methods[method])
                    names = _BEGIN_ARGS.get(k, (None, None))
                else:
                    stack.pop()
                    ev.type = pb.TrackEvent.TYPE_SLICE_END
                    names = _END_ARGS.get(k, (None, None))
                    if err:
                        _annotate(ev, "errno", err)
                if k == "install":
                    a = ev.debug_annotations.add()
                    a.name, a.string_value = "method", methods[method]
                for n, v in zip(names, (arg0, arg1)):
                    if n is not None:
                        _annotate(ev, n, v)
                self._write(p)
            for _ in stack:  # a full buffer dropped their ends: closed at the thread's last event
                p = self._packet(last)
                p.track_event.type = pb.TrackEvent.TYPE_SLICE_END
                p.track_event.track_uuid = uuid
                self._write(p)
            if th.dropped:
                p = self._packet(last)
                p.track_event.type = pb.TrackEvent.TYPE_INSTANT
                p.track_event.track_uuid = uuid
                p.track_event.name = f"{th.dropped} events dropped (buffer full: raise trace_events)"
                self._write(p)
        self._seconds += time.perf_counter() - t0

    def close(self) -> TraceSummary:
        """Finishes the file (renamed over ``path``) and returns what it holds and what writing it took."""
        t0 = time.perf_counter()
        assert self._file is not None, "closed already"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        self._seconds += time.perf_counter() - t0
        return TraceSummary(self.path, self.collections, self.events, self.dropped, os.path.getsize(self.path),
                            self._seconds)

    def abort(self) -> None:
        """Removes the unfinished file (``path`` is left as it was)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass


def _annotate(ev: Any, name: str, value: int) -> None:
    a = ev.debug_annotations.add()
    a.name, a.int_value = name, int(value)


def _slice_name(kind: str, arg0: int, arg1: int, method: str) -> str:
    if kind == "install":
        return f"install {method} {arg1} page{'s' if arg1 != 1 else ''}"
    if kind in ("fault", "fresh page"):
        return f"{kind} page {arg0}"
    if kind == "release":
        return "release (munmap)" if arg0 else "release (madvise)"
    return kind


def write_trace(path: str, collections: List[Tuple[str, Mapping[str, Any]]]) -> TraceSummary:
    """Writes ``collections`` (process name, result's ``trace`` section) into one Perfetto trace at ``path``."""
    with TraceWriter(path) as w:
        for name, trace in collections:
            w.add(name, trace)
        return w.close()


def collection_name(raw: Mapping[str, Any], label: str = "") -> str:
    """A process track's name for one collection's result: strategy/faults, mutators, and ``label``."""
    name = f"{raw['strategy']}/{raw['faults']} {raw['mutators']} mutator{'s' if raw['mutators'] != 1 else ''}"
    return f"{name} {label}".strip()
