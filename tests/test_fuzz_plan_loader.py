"""Fuzzes the native plan-file loader (and the page routines on every plan it accepts) under ASan and UBSan for a
short budget; tests/fuzz/run.sh runs the full million executions."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

from conftest import require

HERE = pathlib.Path(__file__).parent / "fuzz"


def test_plan_loader_survives_fuzzing(tmp_path):
    require(bool(shutil.which("clang++-14") or shutil.which("clang++")),
            "clang with libFuzzer is not installed (apt-get install clang-14 libclang-rt-14-dev)")
    env = dict(os.environ, FUZZ_OUT=str(tmp_path), PYTHON=sys.executable)
    p = subprocess.run(["bash", str(HERE / "run.sh"), "50000"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Done 50000 runs" in p.stdout + p.stderr
