"""Shared fixtures. Tests run against the real kernel; a test that needs a missing kernel feature skips with the
reason, except with CI=true, where this machine has every feature and any skip fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from compactor import uffd

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PS = uffd.PAGE_SIZE


def require(condition: bool, reason: str) -> None:
    """Skips with `reason` unless `condition`; under CI=true a missing feature fails instead."""
    if not condition:
        if CI:
            pytest.fail(f"CI=true, and {reason}: this machine is meant to have every feature")
        pytest.skip(reason)


def has_tlb_row() -> bool:
    """Whether /proc/interrupts counts TLB-shootdown IPIs (x86 does; arm64 broadcasts invalidations in hardware)."""
    with open("/proc/interrupts") as f:
        return any(line.split()[:1] == ["TLB:"] for line in f)


def features():
    try:
        return uffd.probe()
    except uffd.UffdUnavailable as e:  # pragma: no cover - reported through require()
        require(False, f"userfaultfd unavailable: {e}")


@pytest.fixture
def feats():
    return features()


@pytest.fixture
def need_move(feats):
    require("move" in feats, "this kernel lacks UFFDIO_MOVE (Linux >= 6.8)")
    return feats


@pytest.fixture
def u():
    features()
    with uffd.Userfaultfd() as fd:
        yield fd


@pytest.fixture
def mapping():
    made = []

    def make(pages: int = 1, **kw) -> uffd.Mapping:
        m = uffd.Mapping(pages * PS, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        try:
            m.close()
        except BufferError:  # a test still holds a view; the mapping dies with the process
            pass


@pytest.fixture(scope="session")
def device_4k():
    """The emulated arm64 device (Linux 6.12, 4 KiB pages), booted once for every test that needs it."""
    import shutil as _shutil

    require(_shutil.which("qemu-system-aarch64") is not None,
            "qemu-system-aarch64 is missing (apt-get install qemu-system-arm)")
    from compactor.device import emulator

    state = emulator.start("6.12", "4k", log=lambda _m: None)
    yield state["serial"]
    emulator.stop(state["port"])


def bench(*args, check=True) -> subprocess.CompletedProcess:
    """`python -m compactor.bench ARGS` from outside the source tree (the installed package), 300 s at most;
    with `check`, a non-zero exit fails the test with its stderr."""
    p = subprocess.run([sys.executable, "-m", "compactor.bench", *args], capture_output=True, text=True,
                       timeout=300, cwd="/")
    if check:
        assert p.returncode == 0, p.stderr
    return p


def run_python(code: str, *, user=None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter, outside the source tree so that the installed package is imported.
    With `user`, the child drops to that uid (and all capabilities) where the code calls `drop_privileges()`, or
    right after importing compactor: the interpreter and its modules may live where that uid cannot read; the
    kernel checks only the credentials of the caller of userfaultfd(2)."""
    code = textwrap.dedent(code)
    if user is not None:
        prelude = ("import os, json, numpy, numpy.random, numpy.ma, compactor, compactor.uffd\n"
                   f"def drop_privileges():\n    os.setgroups([]); os.setgid({user}); os.setuid({user})\n")
        if "drop_privileges()" not in code:
            prelude += "drop_privileges()\n"
        code = prelude + code
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd="/")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    if CI and skipped:
        terminalreporter.write_line(f"CI=true: {len(skipped)} test(s) skipped; on this machine a skip hides a defect",
                                    red=True)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if CI and reporter is not None and reporter.stats.get("skipped") and session.exitstatus == 0:
        session.exitstatus = 1
