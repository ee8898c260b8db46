"""A new user's first minutes: clone the repository, make a fresh venv, `pip install '.[device]'` (not editable),
and run the README's commands from the clone's root, where the source folder `compactor/` shadows the installed
package. Then the device command against the emulated arm64 device, with no runner given: the installed package
cross-builds it from the sources it carries."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import require

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    require(shutil.which("git") is not None and (ROOT / ".git").exists(), "needs git and a git checkout")
    base = tmp_path_factory.mktemp("new-user")
    clone = base / "compactor"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", ".[device]"], cwd=clone, capture_output=True,
                       text=True, timeout=1200, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return clone, py, base


def run_in(clone, py, *args, env=None, timeout=600):
    return subprocess.run([str(py), *args], cwd=clone, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def test_import_from_the_clone_root_gets_the_installed_package(fresh_clone):
    clone, py, _ = fresh_clone
    p = run_in(clone, py, "-c",
               "import compactor, compactor._native as n; print(compactor.__file__); print(n.__file__)")
    assert p.returncode == 0, p.stderr
    pkg, native = p.stdout.split()
    assert "site-packages" in pkg and "site-packages" in native  # not the source folder it stands in


def test_info_and_bench_run_from_the_clone_root(fresh_clone):
    clone, py, _ = fresh_clone
    p = run_in(clone, py, "-m", "compactor", "info", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["userfaultfd"] is True
    p = run_in(clone, py, "-m", "compactor.bench", "--quick", "--heap", "8MiB", "--repeat", "1", "--strategies",
               "copy,hybrid", "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    assert all(r["verified"] for r in json.loads(p.stdout)["runs"])
    p = run_in(clone, py, "-m", "compactor.device", "--help")
    assert p.returncode == 0 and "emulator" in p.stdout, p.stderr


def test_device_bench_builds_the_runner_from_the_installed_sources(fresh_clone, device_4k):
    clone, py, base = fresh_clone
    require(shutil.which("aarch64-linux-gnu-g++") is not None,
            "the aarch64 cross compiler is missing (apt-get install g++-aarch64-linux-gnu)")
    cache = base / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    env_clean = {k: v for k, v in os.environ.items() if k != "COMPACTOR_DEVICE_RUNNER"}
    p = subprocess.run([str(py), "-m", "compactor.bench", "--device", device_4k, "--quick", "--heap", "8MiB",
                        "--repeat", "1", "--strategies", "copy,move", "--mutators", "0", "--json", "-", "--quiet"],
                       cwd=clone, capture_output=True, text=True, timeout=1200, env=dict(env_clean, **env))
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    assert report["environment"]["arch"] == "aarch64" and all(r["verified"] for r in report["runs"])
    built = list((cache / "compactor" / "runner-aarch64").glob("*/compactor-runner"))
    assert len(built) == 1
    for path in (built[0], built[0].parent, built[0].parent.parent):
        assert path.stat().st_mode & 0o022 == 0  # nobody else can write what is pushed to the phone


def test_without_a_cross_compiler_the_error_names_the_package(fresh_clone, tmp_path):
    clone, py, _ = fresh_clone
    env_clean = {k: v for k, v in os.environ.items() if k != "COMPACTOR_DEVICE_RUNNER"}
    env = dict(env_clean, PATH=str(pathlib.Path(py).parent), XDG_CACHE_HOME=str(tmp_path))
    p = subprocess.run([str(py), "-c", "from compactor.device.runner_build import aarch64_runner; aarch64_runner()"],
                       cwd=clone, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode != 0 and "g++-aarch64-linux-gnu" in p.stderr, p.stderr
