"""Finding (or building) the static aarch64 compactor-runner that is pushed to devices."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from .adb import DeviceError


def source_root() -> Path | None:
    """The source checkout this package runs from (editable installs), or None."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "device" / "build-runner.sh").exists() and (parent / "native").is_dir():
            return parent
    return None


def _sources_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(list((root / "native").rglob("*")) + [root / "CMakeLists.txt"]):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def aarch64_runner() -> Path:
    """$COMPACTOR_DEVICE_RUNNER, else a cached cross-build from the source checkout (device/build-runner.sh)."""
    env = os.environ.get("COMPACTOR_DEVICE_RUNNER")
    if env:
        p = Path(env)
        if not p.is_file():
            raise DeviceError(f"COMPACTOR_DEVICE_RUNNER={env} does not exist")
        return p
    root = source_root()
    if root is None:
        raise DeviceError("no aarch64 compactor-runner: build one with device/build-runner.sh from the source "
                          "checkout and set COMPACTOR_DEVICE_RUNNER to its path")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "compactor" / "runner-aarch64" / _sources_digest(root)
    binary = cache / "compactor-runner"
    if not binary.exists():
        p = subprocess.run(["bash", str(root / "device" / "build-runner.sh"), str(cache)], capture_output=True, text=True)
        if p.returncode != 0:
            raise DeviceError(f"cross-building compactor-runner failed: {p.stderr.strip()[-1500:]}")
    return binary
