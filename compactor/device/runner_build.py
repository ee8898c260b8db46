"""Finding (or building) the static aarch64 compactor-runner that is pushed to devices.

Order: ``$COMPACTOR_DEVICE_RUNNER``; else a cross-build cached under ``$XDG_CACHE_HOME/compactor/runner-aarch64/<digest
of the sources>/``, made on first use from the sources of the source checkout this package runs from (editable
installs) or, for an installed package, from the copy of the runner's sources that the wheel carries
(``compactor/device/runner_src``). Building needs Debian's ``g++-aarch64-linux-gnu`` and ``cmake``.
The cache folders are private (0700) and a cached binary is used only if this user owns it and nobody else can
write it or the folders above it: whoever can write it runs code on the phone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from .adb import DeviceError
from .cache import CacheError, cache_home, check_private, private_dir

CROSS_COMPILER = "aarch64-linux-gnu-g++"


def source_root() -> Optional[Path]:
    """The source checkout this package runs from (editable installs), else the runner sources the installed
    package carries, else None."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "device" / "build-runner.sh").exists() and (parent / "native" / "core").is_dir():
            return parent
    packaged = here.parent / "runner_src"
    if (packaged / "device" / "build-runner.sh").exists():
        return packaged
    return None


def sources_digest(root: Path) -> str:
    """sha256 over the runner's sources (the core, its headers, the runner, the build files)."""
    h = hashlib.sha256()
    files = [root / "CMakeLists.txt", root / "device" / "toolchain-aarch64.cmake", root / "device" / "build-runner.sh"]
    for sub in ("include", "core", "runner"):
        files += sorted(p for p in (root / "native" / sub).rglob("*") if p.is_file())
    for path in files:
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def aarch64_runner() -> Path:
    """$COMPACTOR_DEVICE_RUNNER, else the cached cross-build of the runner's sources (built now when missing)."""
    env = os.environ.get("COMPACTOR_DEVICE_RUNNER")
    if env:
        p = Path(env)
        if not p.is_file():
            raise DeviceError(f"COMPACTOR_DEVICE_RUNNER={env} does not exist")
        return p
    root = source_root()
    if root is None:
        raise DeviceError("this installation carries no sources for the aarch64 compactor-runner: reinstall "
                          "compactor with `pip install '.[device]'`, or set COMPACTOR_DEVICE_RUNNER to a runner "
                          "built with device/build-runner.sh")
    folder = cache_home() / "runner-aarch64" / sources_digest(root)
    binary = folder / "compactor-runner"
    if binary.exists():
        _checked(binary)
        return binary
    missing = [tool for tool in (CROSS_COMPILER, "cmake") if shutil.which(tool) is None]
    if missing:
        raise DeviceError(f"cannot build the aarch64 compactor-runner: {', '.join(missing)} not found; install "
                          f"Debian's g++-aarch64-linux-gnu and cmake (apt-get install g++-aarch64-linux-gnu cmake), "
                          f"or set COMPACTOR_DEVICE_RUNNER")
    try:
        private_dir(folder.parent)
    except CacheError as e:
        raise DeviceError(str(e)) from None
    # Built in a private temporary folder beside the final one, then renamed: no half-built runner is ever cached.
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        proc = subprocess.run(["bash", str(root / "device" / "build-runner.sh"), str(work)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise DeviceError(f"cross-building compactor-runner failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")
        shutil.rmtree(work / "build", ignore_errors=True)
        os.chmod(work, 0o700)
        try:
            os.rename(work, folder)
        except OSError:  # another process cached it first
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _checked(binary)
    return binary


def _checked(binary: Path) -> None:
    try:
        check_private(binary)
    except CacheError as e:
        raise DeviceError(f"{e} (or set COMPACTOR_DEVICE_RUNNER)") from None
