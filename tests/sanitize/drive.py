"""Drives concurrent collections through a sanitizer build of compactor-runner (tests/sanitize/build.sh): every
strategy x fault mode x mutators (0, 1, 4) x fault injection (none, EAGAIN, EBUSY, ENOMEM; a real double install
and a stalled GC thread, whose runs must fail as they should), with and without allocating mutators, on small heaps
of three shapes, plus app signals (SIGPROF, SIGALRM, SIGUSR1 touching the heap) in the fault path, and young
collections of a generational heap (the old generation mapped back in place).

    python tests/sanitize/drive.py --runner build/asan/compactor-runner --kind asan [--repeat 2] [--json F]

Every runner process must end with the status its configuration expects, every collection that should verify must
verify, and no sanitizer may report anything (reports are fatal: halt_on_error; LeakSanitizer runs at exit under
asan). Exit 0 when all holds, 1 otherwise (each failure named), 2 for bad arguments. Plan files are made with the
installed compactor package (run this from outside the source tree, or after `pip install .`).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

SHAPES = ("uniform", "clustered", "dense-prefix")
STRATEGIES = ("stw", "copy", "move", "move-alloc", "hybrid")
MOVE_STRATEGIES = ("move", "move-alloc", "hybrid")
# Markers of a sanitizer report on stderr.
REPORT_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer",
                  "ThreadSanitizer:", "AddressSanitizer:")
# Reports are fatal and exit with this status, so that they can never pass for an expected failure.
REPORT_EXIT = 66
SANITIZER_ENV = {
    "ASAN_OPTIONS": f"halt_on_error=1:exitcode={REPORT_EXIT}:detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": f"halt_on_error=1:exitcode={REPORT_EXIT}:print_stacktrace=1",
    "TSAN_OPTIONS": f"halt_on_error=1:exitcode={REPORT_EXIT}:second_deadlock_stack=1",
}


@dataclass
class Case:
    """One runner invocation: its flags, the exit status it must end with, and how many collections it runs."""

    name: str
    plan: str
    flags: List[str]
    repeat: int
    expect_status: int = 0
    expect_stderr: str = ""


@dataclass
class Outcome:
    collections: int = 0
    runs: int = 0
    failures: List[str] = field(default_factory=list)
    seconds: float = 0.0


def cases(kind: str, repeat: int) -> List[Case]:
    """The matrix. Under tsan, SIGUSR1 (whose handler touches the heap) is left out: ThreadSanitizer queues an
    asynchronous signal and runs its handler at the next intercepted call, even inside a SIGBUS handler whose
    sa_mask blocks that signal (the kernel would not deliver it there), so the handler would fault on a page this
    thread holds: an artefact of TSan's signal emulation, not of the core. ASan delivers signals as the kernel does."""
    out: List[Case] = []
    injections: Dict[str, List[str]] = {
        "none": [], "EAGAIN": ["--inject-errno", "11", "--inject-fraction", "0.05"],
        "EBUSY": ["--inject-errno", "16", "--inject-fraction", "0.1"],
        "ENOMEM": ["--inject-errno", "12", "--inject-fraction", "0.02"],
    }
    for i, strategy in enumerate(STRATEGIES):
        for faults in ("sigbus", "thread"):
            for mutators in (0, 1, 4):
                if strategy == "stw" and (faults, mutators) != ("sigbus", 0):
                    continue  # stop-the-world has no fault delivery and no mutators
                for inj, inj_flags in injections.items():
                    if inj == "EBUSY" and strategy not in MOVE_STRATEGIES:
                        continue  # the kernel never answers COPY with EBUSY
                    plan = SHAPES[(i + mutators + len(inj)) % len(SHAPES)]
                    alloc = ["--alloc-rate", "64000000"] if mutators == 1 else []
                    out.append(Case(f"{strategy}/{faults}/{mutators}/{inj}{'/alloc' if alloc else ''}/{plan}", plan,
                                    ["--strategy", strategy, "--faults", faults, "--mutators", str(mutators),
                                     "--pre-pause-ms", "1", *alloc, *inj_flags], repeat))
    # Young collections (compactor.generations): the old generation's pages mapped back, updated on dirty cards only.
    for strategy in ("copy", "move", "move-alloc", "hybrid"):
        for faults in ("sigbus", "thread"):
            for mutators in (0, 4):
                alloc = ["--alloc-rate", "64000000"] if mutators else []
                out.append(Case(f"{strategy}/{faults}/{mutators}/young", "young",
                                ["--strategy", strategy, "--faults", faults, "--mutators", str(mutators),
                                 "--pre-pause-ms", "1", *alloc], repeat))
    signals = ("sigprof", "sigalrm") if kind == "tsan" else ("sigprof", "sigalrm", "sigusr1")
    for signal in signals:
        for strategy in ("copy", "move", "hybrid"):
            for faults in ("sigbus", "thread"):
                out.append(Case(f"{strategy}/{faults}/4/signal-{signal}", "uniform",
                                ["--strategy", strategy, "--faults", faults, "--mutators", "4", "--signal", signal,
                                 "--signal-hz", "2000", "--pre-pause-ms", "2"], repeat))
    # A heap large enough for the verifier's threaded passes (32 MiB and more: verify.cpp's kWordsPerThread).
    for strategy, faults, mutators in (("copy", "sigbus", 2), ("move", "thread", 0)):
        out.append(Case(f"{strategy}/{faults}/{mutators}/large", "large",
                        ["--strategy", strategy, "--faults", faults, "--mutators", str(mutators)], 1))
    # Error paths, where leaks and use-after-free hide: a real double install (HeapCorruption, status 3; no mutator,
    # which could map the page first and leave the GC's runs too short for the hook), a GC thread stalled past the
    # watchdog (WatchdogTimeout, status 1).
    for strategy in ("copy", "move"):
        for faults in ("sigbus", "thread"):
            out.append(Case(f"{strategy}/{faults}/0/double-install", "clustered",
                            ["--strategy", strategy, "--faults", faults, "--mutators", "0", "--inject-errno", "-1"],
                            1, expect_status=3, expect_stderr="double install"))
            out.append(Case(f"{strategy}/{faults}/1/watchdog", "uniform",
                            ["--strategy", strategy, "--faults", faults, "--mutators", "1", "--stall-seconds", "5",
                             "--watchdog-seconds", "0.2"], 1, expect_status=1, expect_stderr="watchdog"))
    return out


def make_plans(folder: pathlib.Path) -> None:
    import compactor  # the installed package

    for shape in SHAPES:
        heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", garbage=shape, seed=11))
        compactor.plan(heap).save(folder / f"{shape}.plan")
    heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", old_fraction=0.7, mid_fraction=0.05, seed=11))
    compactor.plan(heap, kind="young").save(folder / "young.plan")
    heap = compactor.Heap.generate(compactor.HeapSpec(size="48MiB", seed=11))
    compactor.plan(heap).save(folder / "large.plan")


def run_case(runner: str, folder: pathlib.Path, case: Case, out: Outcome) -> None:
    argv = [runner, str(folder / f"{case.plan}.plan"), "--repeat", str(case.repeat), *case.flags]
    env = dict(os.environ, **SANITIZER_ENV)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    except subprocess.TimeoutExpired:
        out.failures.append(f"{case.name}: no exit within 300 s (a hang)")
        return
    out.runs += 1
    reported = [m for m in REPORT_MARKERS if m in p.stderr]
    if reported or p.returncode == REPORT_EXIT:
        out.failures.append(f"{case.name}: sanitizer report (status {p.returncode}):\n{p.stderr[-4000:]}")
        return
    if p.returncode != case.expect_status or case.expect_stderr not in p.stderr:
        out.failures.append(f"{case.name}: status {p.returncode}, expected {case.expect_status}"
                            f"{' with ' + repr(case.expect_stderr) if case.expect_stderr else ''}:\n{p.stderr[-2000:]}")
        return
    if case.expect_status != 0:
        out.collections += 1
        return
    runs = json.loads(p.stdout)["runs"]
    bad = [r for r in runs if not r["verified"]]
    if len(runs) != case.repeat or bad:
        out.failures.append(f"{case.name}: {len(runs)} runs, {len(bad)} not verified")
        return
    out.collections += len(runs)


def drive(runner: str, kind: str, repeat: int, log=print) -> Outcome:
    out = Outcome()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="compactor-sanitize-") as tmp:
        folder = pathlib.Path(tmp)
        make_plans(folder)
        for case in cases(kind, repeat):
            run_case(runner, folder, case, out)
    out.seconds = time.monotonic() - t0
    log(f"{kind}: {out.collections} collections in {out.runs} runner runs, {len(out.failures)} failures, "
        f"{out.seconds:.1f} s")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runner", required=True, help="a sanitizer build of compactor-runner (build.sh prints it)")
    ap.add_argument("--kind", required=True, choices=("asan", "tsan"))
    ap.add_argument("--repeat", type=int, default=2, help="collections per runner run (default 2)")
    ap.add_argument("--json", help="write the outcome here")
    args = ap.parse_args(argv)
    if not os.access(args.runner, os.X_OK):
        ap.error(f"--runner {args.runner} is not an executable: build it with tests/sanitize/build.sh")
    if not 1 <= args.repeat <= 100:
        ap.error("--repeat must lie in [1, 100]")
    out = drive(args.runner, args.kind, args.repeat)
    for f in out.failures:
        print(f"FAILED {f}", file=sys.stderr)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out.__dict__, indent=2))
    return 1 if out.failures else 0


if __name__ == "__main__":
    sys.exit(main())
