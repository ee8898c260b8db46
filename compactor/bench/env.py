"""Environment probing on the host: usable CPUs, the memory available, virtualization, the environment record."""

from __future__ import annotations

import os
import platform
from typing import Optional

from .. import memory as _memory
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
    """The memory this process may still use under every limit compactor.memory reads (MemAvailable, its cgroups'
    memory.max, RLIMIT_AS minus VmSize, COMPACTOR_MEMORY_LIMIT), whichever leaves least; None when none is known."""
    return _memory.available()


def check_memory(heap_bytes: int, available: Optional[int]) -> None:
    """Raises BenchError (status 2) when a heap of this size cannot fit in the memory available: a whole bench
    needs about 3.5 heaps + 256 MiB (moving space, from-space, pristine image, tables; more than one collect(),
    whose need compactor.memory.collection_need derives). On the host the message names the binding limit."""
    need = int(heap_bytes * 3.5) + (256 << 20)
    if available is not None and need > available:
        lim = _memory.binding_limit()
        under = f" (under {lim.name}: {lim.source})" if lim is not None and lim.available == available else ""
        raise BenchError(f"a {heap_bytes >> 20} MiB heap needs about {need >> 20} MiB of memory (moving space, "
                         f"from-space, pristine image, tables); only {available >> 20} MiB are available{under}: use "
                         "a smaller --heap or raise the limit", 2)


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


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo's "model name", else the architecture)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def host_environment() -> dict:
    env = environment()
    env.update(where="host", model=platform.node(), hostname=platform.node(), cpu_model=cpu_model(), emulated=False,
               virtualized=virtualized(), python=platform.python_version())
    return env
