"""The concurrent core under sanitizers: compactor-runner built with ASan + UBSan (LeakSanitizer at exit) and with
TSan (tests/sanitize/build.sh) drives every strategy x fault mode x mutators (0, 1, 4) x fault injection, allocating
mutators, app signals in the fault path and the abort paths (tests/sanitize/drive.py), with no report."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import require

HERE = pathlib.Path(__file__).parent / "sanitize"
# The symbol each instrumented build must carry: proof that the flags reached the compiler and the linker.
RUNTIME_SYMBOL = {"asan": "__asan_init", "tsan": "__tsan_init"}


def build(kind: str, out: pathlib.Path) -> str:
    require(bool(shutil.which("clang++-14") or shutil.which("clang++")),
            "clang with the sanitizer runtimes is not installed (apt-get install clang-14 libclang-rt-14-dev)")
    p = subprocess.run(["bash", str(HERE / "build.sh"), kind, str(out)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    return p.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["asan", "tsan"])
def test_two_hundred_concurrent_collections_run_clean_under_the_sanitizer(kind, tmp_path):
    """At least 200 collections through the whole matrix end as each should, verified, with 0 sanitizer reports."""
    runner = build(kind, tmp_path / kind)
    symbols = subprocess.run(["nm", runner], capture_output=True, text=True, check=True).stdout
    assert RUNTIME_SYMBOL[kind] in symbols, f"{runner} is not instrumented with {kind}"
    result = tmp_path / "outcome.json"
    p = subprocess.run([sys.executable, str(HERE / "drive.py"), "--runner", runner, "--kind", kind,
                        "--json", str(result)], capture_output=True, text=True, timeout=1200, cwd="/")
    assert result.exists(), f"drive.py ended with status {p.returncode} and no outcome:\n{p.stderr[-4000:]}"
    outcome = json.loads(result.read_text())
    assert p.returncode == 0 and not outcome["failures"], "\n".join(outcome["failures"])[-6000:]
    assert outcome["collections"] >= 200
