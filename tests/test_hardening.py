"""Bad options never hang, and the concurrent path refuses to go on when the kernel or the state machine says
something is wrong: each test here failed (or hung) before its fix."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import compactor
from compactor import HeapCorruption

from conftest import run_python

BAD_COLLECT_OPTIONS = [
    ({"release_chunk": 0}, "release_chunk must lie in [4096"),
    ({"release_chunk": 4097 * 2}, "release_chunk must be a multiple of the page size"),
    ({"batch": 0}, "batch must lie in [1, 4096]"),
    ({"batch": 10 ** 6}, "batch must lie in [1, 4096]"),
    ({"mutators": -1}, "mutators must be a non-negative integer"),
    ({"mutators": 257}, "mutators must lie in [0, 256]"),
    ({"watchdog": 0.0}, "watchdog_seconds must lie in"),
    ({"watchdog": math.nan}, "watchdog_seconds must lie in"),
    ({"watchdog": -1.0}, "watchdog_seconds must lie in"),
    ({"write_fraction": 1.5}, "write_fraction must lie in [0, 1]"),
    ({"inject": "EAGAIN", "inject_fraction": -0.1}, "inject_fraction must lie in [0, 1]"),
    ({"stall_seconds": -1.0}, "stall_seconds must lie in"),
    ({"late_access_seconds": 1e9}, "late_access_seconds must lie in"),
    ({"gc_cpu": 999}, "gc_cpu names CPU 999"),
    ({"mutator_cpus": [0, 999]}, "mutator_cpus names CPU 999"),
    ({"move_min_run": 0}, "move_min_run must be 'auto' or a number of pages >= 1"),
    ({"move_min_run": 5000}, "move_min_run must be auto or lie in [1, 4096] pages"),
    ({"move_min_run": "fast"}, "move_min_run must be 'auto' or a number of pages"),
    ({"think": "daydream"}, "unknown think 'daydream' (choose busy or sleep)"),
    ({"tlab": 4100}, "tlab must be a multiple of 8 bytes"),
    ({"frame_duty": 0.0}, "frame_duty must lie in [0.01, 1]"),
    ({"hops": 65}, "hops must lie in [0, 64]"),
    ({"max_samples": 2 ** 40}, "max_samples must lie in"),
    ({"seed": -3}, "seed must be a non-negative integer"),
    ({"frobnicate": 1}, "unknown collect() option 'frobnicate'"),
    ({"backoff": "spin"}, "unknown backoff 'spin'"),
    ({"access": "zigzag"}, "unknown access pattern 'zigzag'"),
    ({"inject": "EPERM"}, "inject must be one of"),
    ({"batch": "64"}, "batch='64' has the wrong type"),
]


def test_every_bad_collect_option_is_a_value_error_naming_it():
    """All in one child with a timeout: a bad value that hung (release_chunk=0 did) fails the test instead of CI."""
    cases = [(opts, msg) for opts, msg in BAD_COLLECT_OPTIONS]
    p = run_python(f"""
        import json, math, compactor
        heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=1))
        plan = compactor.plan(heap)
        out = []
        for opts, _ in {cases!r}:
            try:
                compactor.collect(heap, "copy", mutators=opts.pop("mutators", 0), plan=plan, **opts)
                out.append(None)
            except ValueError as e:
                out.append(str(e))
        print(json.dumps(out))
    """.replace("nan", "math.nan"), timeout=120)
    assert p.returncode == 0, p.stderr
    for (opts, msg), got in zip(cases, json.loads(p.stdout)):
        assert got is not None and msg in got, (opts, got)


@pytest.mark.parametrize(("flags", "message"), [
    (["--batch", "0"], "batch must lie in [1, 4096]"),
    (["--mutators", "4294967297"], "mutators takes an integer in [0, 4294967295]"),
    (["--mutators", "300"], "mutators must lie in [0, 256]"),
    (["--release-chunk", "0"], "release_chunk must lie in"),
    (["--release-chunk", "5000"], "release_chunk must be a multiple of the page size"),
    (["--watchdog", "abc"], "watchdog_seconds takes a number"),
    (["--watchdog", "0"], "watchdog_seconds must lie in"),
    (["--gc-cpu", "999"], "gc_cpu names CPU 999"),
    (["--mutator-cpus", "0,x"], "mutator_cpus takes an integer"),
    (["--write-fraction", "2"], "write_fraction must lie in [0, 1]"),
    (["--backoff", "spin"], "unknown backoff 'spin'"),
    (["--strategy", "teleport"], "unknown strategy 'teleport'"),
    (["--repeat", "0"], "--repeat must lie in [1, 10000]"),
    (["--hops", "65"], "hops must lie in [0, 64]"),
    (["--move-min-run", "0"], "move_min_run takes auto or a number of pages >= 1"),
    (["--think", "daydream"], "unknown think 'daydream'"),
    (["--frobnicate"], "unknown option --frobnicate"),
])
def test_runner_refuses_bad_flags_with_the_same_checks(flags, message, tmp_path):
    from compactor.bench.suite import runner_path

    heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=1))
    path = tmp_path / "h.plan"
    compactor.plan(heap).save(path)
    p = subprocess.run([runner_path(), str(path), *flags], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert p.stdout == ""  # no partial output


@pytest.mark.parametrize(("strategy", "ioctl"), [("copy", "UFFDIO_COPY"), ("move", "UFFDIO_MOVE")])
def test_an_eexist_after_partial_progress_aborts_as_a_double_install(strategy, ioctl, need_move):
    """The kernel finds the last page of the GC's first several-page run already mapped (a zero page mapped there
    behind the state machine's back), so the ioctl installs the others and fails there. Before, the EEXIST was
    counted and skipped; later, a MOVE's EEXIST was judged at the run's first page (moved, so "moved despite
    EEXIST"), the failing page was passed over and the heap came out corrupt."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=4))
    with pytest.raises(HeapCorruption, match=rf"double install: to-space page \d+ was already mapped when this "
                                             rf"thread's {ioctl} reached it \(EEXIST; GC thread, run of \d+ pages"
                                             rf".*pagemap present, mapped per page state no\)"):
        compactor.collect(heap, strategy, inject="EEXIST")
    assert compactor.collect(heap, strategy).verified  # the heap resets and collects cleanly afterwards


def test_a_hardware_error_sigbus_in_the_heap_is_chained_not_resolved_forever():
    """A mutator touches a page the GC poisoned (UFFDIO_POISON: a BUS_MCEERR_AR SIGBUS, as a memory error would
    raise). Before, the handler took it for a missing page, found the page mapped, returned, and the access
    faulted again forever; now it goes to the previous handler (the default: the process dies of SIGBUS)."""
    # The hook poisons the GC thread's first batch; now and then the mutator resolves every page of this small
    # heap before the GC installs one (3 in 30 runs), so nothing is poisoned: collect again until something is.
    p = run_python("""
        import compactor
        heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=5))
        for _ in range(20):
            r = compactor.collect(heap, "copy", faults="sigbus", mutators=1, inject="POISON", watchdog=30)
            assert r.counters["injected_failures"] == 0 and r.pages["by_mutators"] == r.pages["total"], r.pages
        print("survived")
    """, timeout=60)
    assert p.returncode == -signal.SIGBUS, (p.returncode, p.stdout, p.stderr)


def test_a_heap_without_roots_starts_the_phase_at_once():
    """Mutators with nothing to touch used to hold the GC thread back until the watchdog's deadline."""
    g = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=6))
    heap = compactor.Heap(g.heap_size, g.offset, g.size, g.num_refs, g.identity, g.refs, np.zeros(0, np.int32))
    t0 = time.perf_counter()
    r = compactor.collect(heap, "copy", mutators=2, watchdog=30)
    elapsed = time.perf_counter() - t0
    assert r.verified and r.pages["total"] == 0
    assert elapsed < 30 / 4, f"took {elapsed:.1f} s: the phase waited for mutators that never access anything"


@pytest.mark.parametrize("faults", ["thread", "sigbus"])
def test_a_mutator_access_after_the_phase_does_not_hang(faults):
    """A mutator touches an empty page after the GC finished. In fault-thread mode the fault thread has exited by
    then: before the fix the range was still registered and the access blocked forever (join hung)."""
    p = run_python(f"""
        import compactor
        heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=7))
        r = compactor.collect(heap, "copy", faults="{faults}", mutators=1, late_access_seconds=0.05)
        print(r.verified)
    """, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "True", p.stderr


def test_a_loaded_plan_saves_byte_identical(tmp_path):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=8, garbage="clustered"))
    first, second = tmp_path / "a.plan", tmp_path / "b.plan"
    compactor.plan(heap).save(first)
    compactor.Plan.load(first).save(second)
    assert first.read_bytes() == second.read_bytes()


def test_the_source_folder_shadowing_an_install_is_named_when_they_differ(tmp_path):
    """From a checkout's root `python -m compactor` finds the source folder first. Identical sources: the installed
    copy is loaded in its place (tested end to end in test_first_contact.py). Different sources: a loud error
    naming both folders."""
    import importlib.metadata
    import shutil

    direct = json.loads(importlib.metadata.distribution("compactor").read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        pytest.skip("compactor is installed editable here: its import hook wins over any folder on sys.path")
    src = tmp_path / "checkout" / "compactor"
    shutil.copytree(os.path.dirname(compactor.__file__), src,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "bin", "runner_src"))
    root = pathlib.Path(__file__).resolve().parents[1]
    shutil.copytree(root / "native", src.parent / "native")
    core = src.parent / "native" / "core" / "plan.cpp"
    core.write_text(core.read_text() + "\n// edited\n")  # the C++ the installed binary was built from, changed
    p = subprocess.run([sys.executable, "-c", "import compactor"], capture_output=True, text=True, timeout=60,
                       cwd=src.parent)
    assert p.returncode != 0
    assert "shadows the installed package" in p.stderr and str(src) in p.stderr
    assert "native/core/plan.cpp" in p.stderr and "heap.py" not in p.stderr
    (src / "heap.py").write_text((src / "heap.py").read_text() + "\n# edited\n")
    p = subprocess.run([sys.executable, "-c", "import compactor"], capture_output=True, text=True, timeout=60,
                       cwd=src.parent)
    assert p.returncode != 0 and "heap.py" in p.stderr
