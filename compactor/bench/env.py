"""Environment probing on the host: usable CPUs, the memory available, virtualization, the environment record."""

from __future__ import annotations

import os
import platform
from typing import Optional

from ..info import environment
from .types import BenchError


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_mutators() -> tuple:
    """0, and as many mutators as leave one CPU to the GC thread (at least 1): no oversubscription."""
    return (0, max(1, usable_cpus() - 1))


def memory_available() -> Optional[int]:
    """The memory this process may use: MemAvailable, bounded by the cgroup's memory.max and by the
    COMPACTOR_MEMORY_LIMIT environment variable (bytes), whichever is smallest."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                limits.append(int(text) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    env = os.environ.get("COMPACTOR_MEMORY_LIMIT")
    if env:
        limits.append(int(env))
    return min(limits) if limits else None


def check_memory(heap_bytes: int, available: Optional[int]) -> None:
    """Raises BenchError (status 2) when a heap of this size cannot fit in the memory available."""
    need = int(heap_bytes * 3.5) + (256 << 20)
    if available is not None and need > available:
        raise BenchError(f"a {heap_bytes >> 20} MiB heap needs about {need >> 20} MiB of memory (moving space, "
                         f"from-space, pristine image, tables); only {available >> 20} MiB are available: use a "
                         "smaller --heap", 2)


def check_usable(env: dict) -> None:
    """Raises BenchError (status 2) when this environment has no userfaultfd."""
    if not env["userfaultfd"]:
        raise BenchError(f"userfaultfd is unavailable here, nothing to measure: {env['error']}", 2)


def virtualized() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " hypervisor" in f.read()
    except OSError:
        return False


def host_environment() -> dict:
    env = environment()
    env.update(where="host", model=platform.node(), emulated=False, virtualized=virtualized(),
               python=platform.python_version())
    return env
