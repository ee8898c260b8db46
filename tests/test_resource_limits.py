"""Resource limits: a collection that cannot fit under RLIMIT_AS or a cgroup's memory limit is refused before
anything is mapped, with the numbers; an OOM inside the concurrent phase is reported, never a hang. Every limit
is set in a child process (or a cgroup made for the test and removed after), so this process keeps its own."""

import os
import resource
import subprocess
import sys
import textwrap
import time

import pytest

from compactor import memory
from compactor.bench.suite import runner_path

from conftest import require, run_python

CHILD_PRELUDE = """
import os, resource, sys
import compactor
def vm_size():  # bytes of address space this process has mapped (VmSize in /proc/self/status)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
def limit_address_space(extra):
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + extra, resource.RLIM_INFINITY))
"""


def child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), *args], cwd="/",
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_rlimit_as_too_small_refuses_collect_before_mapping():
    """Under an RLIMIT_AS 300 MiB above VmSize, collect() of a 256 MiB heap raises InsufficientMemory naming it."""
    p = run_python(CHILD_PRELUDE + """
h = compactor.Heap.generate(compactor.HeapSpec(size="256MiB", seed=1))
limit_address_space(300 << 20)
before = vm_size()
try:
    compactor.collect(h, "copy")
except compactor.InsufficientMemory as e:
    print(e.limit, e.need > e.available, vm_size() - before)
    print(e)
""", timeout=120)
    assert p.returncode == 0, p.stderr
    first, message = p.stdout.splitlines()[:2]
    assert first.split()[:2] == ["RLIMIT_AS", "True"]
    assert int(first.split()[2]) < (16 << 20)  # nothing was mapped before the refusal
    assert "a copy collection of a 256 MiB heap needs about" in message and "of address space" in message
    assert "moving space 256 MiB" in message and "from-space 256 MiB" in message
    assert "under RLIMIT_AS (RLIMIT_AS = " in message and "VmSize in /proc/self/status" in message


def test_rlimit_as_too_small_refuses_the_runner_before_mapping(tmp_path):
    """The runner under an RLIMIT_AS too small for a saved 256 MiB plan exits 2 naming RLIMIT_AS and the numbers."""
    path = tmp_path / "heap.plan"
    p = run_python(f"""
import compactor
h = compactor.Heap.generate(compactor.HeapSpec(size="256MiB", seed=1))
compactor.plan(h).save({str(path)!r})
""", timeout=120)
    assert p.returncode == 0, p.stderr

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (400 << 20, resource.RLIM_INFINITY))

    r = subprocess.run([runner_path(), str(path), "--strategy", "copy"], capture_output=True, text=True,
                       timeout=60, preexec_fn=limit)
    assert r.returncode == 2, r.stderr
    assert "a collection of a 256 MiB heap needs about" in r.stderr and "of address space" in r.stderr
    assert "under RLIMIT_AS (RLIMIT_AS = 419430400 (400 MiB)" in r.stderr and r.stdout == ""


# -- cgroups ----------------------------------------------------------------------------------------------------

_ENABLED_MEMORY_IN: dict = {}  # test cgroup -> the subtree_control file where this test enabled +memory


def make_test_cgroup() -> str:
    """A memory cgroup for this test: a child of this process's own (cgroup v1's memory controller) or of the
    cgroup2 root with the memory controller enabled (and disabled again by remove_test_cgroup if this test
    enabled it); skipped (failed under CI) where neither can be made."""
    require(os.geteuid() == 0, "memory cgroups need root")
    dirs = memory.cgroup_dirs()
    require(bool(dirs), "no memory cgroup controller is mounted (cgroup v1 memory or cgroup2 with memory)")
    version, own = dirs[0]
    parent = own if version == "1" else dirs[-1][1]
    if version == "2":
        with open(os.path.join(parent, "cgroup.controllers")) as f:
            require("memory" in f.read().split(), "the cgroup2 root has no memory controller")
        control = os.path.join(parent, "cgroup.subtree_control")
        with open(control) as f:
            enable = "memory" not in f.read().split()
        if enable:
            with open(control, "w") as w:
                w.write("+memory")
    path = os.path.join(parent, f"compactor-test-{os.getpid()}")
    os.mkdir(path)
    if version == "2" and enable:
        _ENABLED_MEMORY_IN[path] = control
    return path


def limit_file(cg: str) -> str:
    return os.path.join(cg, "memory.max" if os.path.exists(os.path.join(cg, "memory.max")) else "memory.limit_in_bytes")


def usage(cg: str) -> int:
    name = "memory.current" if os.path.exists(os.path.join(cg, "memory.current")) else "memory.usage_in_bytes"
    with open(os.path.join(cg, name)) as f:
        return int(f.read())


def remove_test_cgroup(cg: str) -> None:
    """Moves whatever is left in the test cgroup to its parent, removes it, puts the parent's controllers back as
    they were, and checks the cgroup is gone (unless the test is already failing: its own error is the one to
    see)."""
    with open(os.path.join(cg, "cgroup.procs")) as f:
        pids = f.read().split()
    for pid in pids:
        try:
            with open(os.path.join(os.path.dirname(cg), "cgroup.procs"), "w") as f:
                f.write(pid)
        except OSError:
            pass  # it exited meanwhile
    for _ in range(100):  # a killed process leaves the cgroup a moment after its parent reaps it
        try:
            os.rmdir(cg)
            break
        except OSError:
            time.sleep(0.05)
    control = _ENABLED_MEMORY_IN.pop(cg, None)
    if control is not None:
        try:
            with open(control, "w") as w:
                w.write("-memory")
        except OSError:
            pass  # another cgroup of the machine uses it now (EBUSY): it stays enabled
    if sys.exc_info()[0] is None:
        assert not os.path.exists(cg), f"{cg} is left behind"


JOIN = "open(os.path.join(sys.argv[1], 'cgroup.procs'), 'w').write(str(os.getpid()))\n"


def test_cgroup_memory_limit_too_small_refuses_collect_before_mapping():
    """In a cgroup whose memory limit leaves less than one collection needs, collect() is refused naming it."""
    cg = make_test_cgroup()
    p = None
    try:
        with open(limit_file(cg), "w") as f:
            f.write(str(600 << 20))
        p = child(JOIN + """
h = compactor.Heap.generate(compactor.HeapSpec(size="256MiB", seed=1))
before = vm_size()
try:
    compactor.collect(h, "move")
except compactor.InsufficientMemory as e:
    print(e.limit)
    print(e)
    print(vm_size() - before)
""", cg)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        name, message, grown_kib = out.splitlines()[:3]
        assert name in ("cgroup memory.max", "cgroup memory.limit_in_bytes")
        assert "a move collection of a 256 MiB heap needs about" in message and "of memory" in message
        assert f"{cg}/{os.path.basename(limit_file(cg))} = {600 << 20} (600 MiB)" in message
        assert usage(cg) < (600 << 20)
        assert int(grown_kib) < 16 << 10  # refused before the space, the image or the from-space was mapped
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        remove_test_cgroup(cg)


WATCHDOG = 10  # the child collection's watchdog_seconds


def test_oom_inside_the_phase_is_reported_not_a_hang():
    """A cgroup limit lowered while the GC thread is inside the phase ends the child within seconds, reported as
    an OOM kill (this kernel: the memcg OOM killer, not ENOMEM from UFFDIO_COPY) or as an ENOMEM error."""
    cg = make_test_cgroup()
    p = None
    try:
        oom_before = memory.oom_kills(cg)
        # release_chunk: the from-space is given back only at the end, so every COPYed page is new memory.
        p = child(JOIN + """
h = compactor.Heap.generate(compactor.HeapSpec(size="128MiB", live_fraction=0.9, seed=1))
p = compactor.plan(h)
h.reset()
print("ready", flush=True)
sys.stdin.readline()
print("collecting", flush=True)
try:
    r = compactor.collect(h, "copy", plan=p, stall_seconds=2, watchdog_seconds=""" + str(WATCHDOG) + """,
                          release_chunk=1 << 40)
    print("collected", r.verified, flush=True)
except compactor.UffdError as e:
    print("error", e, flush=True)
    sys.exit(1)
""", cg)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        threads_before = len(os.listdir(f"/proc/{p.pid}/task"))
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "collecting"
        # The phase has begun once its threads exist (the memory check is over by then); the GC thread then
        # holds its first page for 2 s.
        while len(os.listdir(f"/proc/{p.pid}/task")) <= threads_before and p.poll() is None:
            time.sleep(0.01)
        time.sleep(0.5)  # the pause (milliseconds) is over well within the GC thread's 2 s hold
        with open(limit_file(cg), "w") as f:
            f.write(str(usage(cg) + (8 << 20)))
        t0 = time.monotonic()
        out, err = p.communicate(timeout=60)  # a hang fails here
        assert time.monotonic() - t0 < 3 * WATCHDOG  # ended by the OOM killer or an error, not by waiting it out
        report = memory.describe_death(p.returncode, oom_before, cg)
        assert (p.returncode == -9 and report.startswith("killed by the OOM killer (")
                and "oom_kill " in report) or ("ENOMEM" in out and "under cgroup" in out), (p.returncode, out, err)
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        remove_test_cgroup(cg)


def test_the_bench_names_the_binding_limit(monkeypatch):
    """The bench's memory check reads compactor.memory: COMPACTOR_MEMORY_LIMIT binding, its refusal names it."""
    monkeypatch.setenv("COMPACTOR_MEMORY_LIMIT", str(512 << 20))
    from compactor.bench.env import check_memory, memory_available
    from compactor.bench.types import BenchError

    assert memory_available() == 512 << 20
    with pytest.raises(BenchError, match="only 512 MiB are available .under COMPACTOR_MEMORY_LIMIT"):
        check_memory(1 << 30, memory_available())
