"""Perfetto traces of collections (the trace_events option, compactor.trace, collect(trace=...), bench --trace):
the written trace parses with the perfetto package's protos and its slices match the run's counters."""

from __future__ import annotations

import errno
import json
import subprocess
from collections import Counter, defaultdict

import pytest

import compactor
from compactor import _native
from compactor.bench.executors import runner_path
from compactor.trace import TraceWriter, write_trace

from conftest import bench, run_python

pb = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2")
BEGIN, END, INSTANT, COUNTER = (pb.TrackEvent.TYPE_SLICE_BEGIN, pb.TrackEvent.TYPE_SLICE_END,
                                pb.TrackEvent.TYPE_INSTANT, pb.TrackEvent.TYPE_COUNTER)


@pytest.fixture(scope="module")
def heap():
    h = compactor.Heap.generate(compactor.HeapSpec(size="8MiB", live_fraction=0.5, seed=5))
    return h, compactor.plan(h)


class Parsed:
    """A written trace, parsed with the package's protos: processes, threads, slices (with their parent slice and
    annotations) and counter values."""

    def __init__(self, path):
        t = pb.Trace()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        self.processes, self.threads, self.counter_tracks = {}, {}, {}
        self.slices = []  # (process name, thread name, slice name, parent slice name, annotations)
        self.counters = defaultdict(list)  # (process, counter name) -> values
        self.instants = []
        stacks = defaultdict(list)
        owner = {}
        for p in t.packet:
            if p.HasField("track_descriptor"):
                d = p.track_descriptor
                if d.HasField("process"):
                    self.processes[d.uuid] = d.process.process_name
                elif d.HasField("thread"):
                    self.threads[d.uuid] = d.thread.thread_name
                    owner[d.uuid] = d.parent_uuid
                elif d.HasField("counter"):
                    self.counter_tracks[d.uuid] = d.name
                    owner[d.uuid] = d.parent_uuid
                continue
            e = p.track_event
            proc = self.processes[owner[e.track_uuid]]
            if e.type == COUNTER:
                self.counters[(proc, self.counter_tracks[e.track_uuid])].append(e.counter_value)
                continue
            thread = self.threads[e.track_uuid]
            stack = stacks[e.track_uuid]
            args = {a.name: a.string_value or a.int_value for a in e.debug_annotations}
            if e.type == BEGIN:
                self.slices.append([proc, thread, e.name, stack[-1][2] if stack else None, args])
                stack.append(self.slices[-1])
            elif e.type == END:
                stack.pop()[4].update({"end_" + k: v for k, v in args.items()})
            elif e.type == INSTANT:
                self.instants.append((proc, thread, e.name))
        self.unclosed = sum(len(s) for s in stacks.values())

    def names(self, prefix, thread=None):
        return [s for s in self.slices if s[2].startswith(prefix) and (thread is None or s[1] == thread)]


def check_against_counters(parsed, r):
    """The slices of one collection's trace against its counters."""
    c, pages = r.counters, r.pages
    installs = parsed.names("install ")
    by_method = Counter(s[4]["method"] for s in installs)
    # One install slice per install ioctl: the counters count every UFFDIO_COPY/MOVE call issued (an injected
    # failure included: it stands for a call the kernel failed) and every UFFDIO_ZEROPAGE of a thread.
    assert by_method["COPY"] == c["ioctl_copy"] and by_method["MOVE"] == c["ioctl_move"]
    assert by_method["ZEROPAGE"] == c["ioctl_zeropage"]
    assert sum(s[4]["end_installed_pages"] for s in installs if s[4]["method"] != "ZEROPAGE") * 4096 == \
        c["bytes_copied"] + c["bytes_moved"]
    # One fault slice per fault a mutator's SIGBUS handler (or the fault thread) took: faults_handled counts exactly
    # those. The faults that resolved a page compacted it (a compact slice inside): pages by_mutators, exact.
    faults = parsed.names("fault page ")
    assert len(faults) == c["faults_handled"]
    compacts_in_faults = [s for s in parsed.names("compact") if s[3] is not None and s[3].startswith("fault page")]
    assert len(compacts_in_faults) == pages["by_mutators"]
    runs = r.raw["gc_runs_by_length_log2"]
    assert len(parsed.names("gc run", "GC thread")) == sum(runs["moved"]) + sum(runs["copied"])
    assert all(s[3] == "gc run" for s in parsed.names("compact", "GC thread"))
    assert len(parsed.names("pause", "collector")) == 1 and parsed.unclosed == 0


@pytest.mark.parametrize(("strategy", "faults", "options"), [
    ("copy", "sigbus", {}), ("move", "sigbus", {}), ("move", "thread", {}),
    ("move", "sigbus", {"alloc_rate": 64 << 20}),  # fresh pages: zero-page and ZeroAndMove installs in faults
    ("copy", "sigbus", {"signal": "sigusr1", "signal_hz": 5000.0}),  # faults nested in a signal handler's wait
])
def test_traced_collection_slices_match_its_counters(heap, tmp_path, need_move, strategy, faults, options):
    """A traced collection's trace parses and has one install slice per ioctl and one fault slice per fault."""
    h, plan = heap
    path = str(tmp_path / "c.perfetto-trace")
    r = compactor.collect(h, strategy, faults, 2, plan=plan, trace=path, seed=3, **options)
    assert r.verified and r.trace_file.dropped == 0 and r.trace_file.bytes > 0
    p = Parsed(path)
    assert list(p.processes.values()) == [f"{strategy}/{faults} 2 mutators"]
    want = ["collector", "GC thread", "mutator 0", "mutator 1"] + (["fault thread"] if faults == "thread" else [])
    assert sorted(p.threads.values()) == sorted(want)
    check_against_counters(p, r)
    fresh = r.pages["zeropage"] + r.pages["fresh_zero_and_move"] + r.pages["fresh_copy"]
    assert p.counters[(f"{strategy}/{faults} 2 mutators", "pages mapped")][-1] <= r.pages["total"] + fresh


def test_injected_failures_are_install_slices_with_their_errno(heap, tmp_path, need_move):
    """An injected EBUSY is an install slice (the counters count its ioctl) whose end carries the errno."""
    h, plan = heap
    path = str(tmp_path / "i.perfetto-trace")
    r = compactor.collect(h, "move", plan=plan, batch=8, inject="EBUSY", inject_fraction=0.3, trace=path)
    assert r.verified and r.counters["injected_failures"] > 0
    p = Parsed(path)
    check_against_counters(p, r)
    assert sum(1 for s in p.names("install MOVE") if s[4].get("end_errno") == errno.EBUSY) == r.counters["ebusy"]


def test_tracing_leaves_results_unchanged(heap, tmp_path, need_move):
    """A seeded run without mutators installs the same pages by the same methods traced or not, and verifies."""
    h, plan = heap
    plain = compactor.collect(h, "move", plan=plan, seed=9)
    traced = compactor.collect(h, "move", plan=plan, seed=9, trace=str(tmp_path / "t.perfetto-trace"))
    assert plain.verified and traced.verified
    assert plain.pages == traced.pages and plain.raw["digest"] == traced.raw["digest"]
    for k in ("ioctl_copy", "ioctl_move", "ioctl_zeropage"):
        assert plain.counters[k] == traced.counters[k]


def test_tracing_off_records_nothing(heap, tmp_path):
    """Without trace_events the result has no trace, and the runner's JSON no trace section."""
    h, plan = heap
    r = compactor.collect(h, "copy", mutators=1, plan=plan)
    assert r.trace is None and "trace" not in r.raw and compactor.collector.CollectorConfig().trace_events == 0
    path = str(tmp_path / "h.plan")
    plan.save(path)
    p = subprocess.run([runner_path(), path, "--strategy", "copy"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "trace" not in json.loads(p.stdout)["runs"][0]


def test_full_buffer_drops_and_reports(heap, tmp_path):
    """A buffer too small for the run drops the rest, counts the drops, and the trace still closes every slice."""
    h, plan = heap
    path = str(tmp_path / "d.perfetto-trace")
    r = compactor.collect(h, "copy", mutators=1, plan=plan, trace=path, trace_events=16)
    assert r.verified
    dropped = {t["name"]: t["dropped"] for t in r.trace["threads"]}
    assert dropped["GC thread"] > 0 and all(len(t["events"]) <= 16 for t in r.trace["threads"])
    assert r.trace_file.dropped == sum(dropped.values())
    p = Parsed(path)
    assert p.unclosed == 0
    assert any(t == "GC thread" and "events dropped" in n for _, t, n in p.instants)


def test_runner_json_carries_the_same_trace(heap, tmp_path):
    """compactor-runner --trace-events prints the events in its JSON; written on the host they match its counters."""
    h, plan = heap
    path = str(tmp_path / "h.plan")
    plan.save(path)
    p = subprocess.run([runner_path(), path, "--strategy", "copy", "--mutators", "1", "--trace-events", "100000"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    raw = json.loads(p.stdout)["runs"][0]
    tables = _native.trace_tables()
    assert {k: raw["trace"][k] for k in tables} == tables
    out = str(tmp_path / "r.perfetto-trace")
    write_trace(out, [("runner", raw["trace"])])

    class R:  # the fields check_against_counters reads, from the runner's JSON
        counters, pages = raw["counters"], raw["pages"]

    R.raw = raw
    check_against_counters(Parsed(out), R)


def test_bench_and_sweep_trace_every_collection(tmp_path):
    """bench --trace and bench sweep --trace write one parsable trace with a process track per collection."""
    path = str(tmp_path / "b.perfetto-trace")
    report = json.loads(bench("--heap", "8MiB", "--repeat", "2", "--strategies", "copy,move", "--mutators", "1",
                              "--mutator-profile", "stress", "--runner", "--trace", path, "--json", "-",
                              "--quiet").stdout)
    procs = sorted(Parsed(path).processes.values())
    assert procs == sorted(f"{s}/sigbus 1 mutator stress #{k}" for s in ("copy", "move") for k in (1, 2))
    assert report["trace"]["collections"] == 4 and report["trace"]["path"] == path
    path = str(tmp_path / "s.perfetto-trace")
    report = json.loads(bench("sweep", "--quick", "--heap", "8MiB", "--repeat", "1", "--strategies", "move",
                              "--mutators", "1", "--batch", "64", "--live", "0.5", "--trace", path, "--json", "-",
                              "--quiet").stdout)
    procs = sorted(Parsed(path).processes.values())
    assert len(procs) == len(report["cells"]) == report["trace"]["collections"]
    assert all("batch 64 live 0.50" in n for n in procs)


def test_aborted_trace_leaves_the_file_as_it_was(tmp_path):
    """A TraceWriter that is aborted (the run failed) removes its temporary file and leaves the path untouched."""
    path = tmp_path / "x.perfetto-trace"
    path.write_bytes(b"before")
    w = TraceWriter(str(path))
    w.add("nothing", {**_native.trace_tables(), "threads": []})
    w.abort()
    assert path.read_bytes() == b"before" and [f.name for f in tmp_path.iterdir()] == ["x.perfetto-trace"]


def test_trace_without_perfetto_names_the_extra(tmp_path):
    """collect(trace=...) without the perfetto package fails before running, naming pip install 'compactor[trace]'."""
    p = run_python(f"""
        import sys
        sys.modules["perfetto"] = None
        import compactor
        from compactor.trace import PerfettoMissing
        heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=1))
        try:
            compactor.collect(heap, "copy", trace={str(tmp_path / 'n.perfetto-trace')!r})
        except PerfettoMissing as e:
            print(e)
        print(heap.state)
    """)
    assert p.returncode == 0, p.stderr
    assert "pip install 'compactor[trace]'" in p.stdout and p.stdout.split()[-1] == "unmaterialized"  # nothing ran
    assert not list(tmp_path.iterdir())


def test_the_writer_names_only_kinds_the_core_defines():
    """compactor.trace's per-kind names and annotations refer to kinds of the core's one table (trace_events.hpp)."""
    from compactor import trace

    kinds = set(_native.trace_tables()["kinds"])
    assert set(trace._BEGIN_ARGS) <= kinds and set(trace._END_ARGS) <= kinds
    assert {"install", "fault", "fresh page", "release"} <= kinds  # the kinds _slice_name names
