"""Exceptions raised by compactor. The native core raises these directly (see native/python/module.cpp)."""

from __future__ import annotations


class UffdError(OSError):
    """A userfaultfd operation failed.

    ``errno`` is the kernel's error, ``op`` the operation ("MOVE", "COPY", "REGISTER", ...), and ``done`` the
    number of bytes completed before the failure (partial progress is continued automatically first).
    """

    def __init__(self, errno: int, message: str, op: str = "", done: int = 0) -> None:
        super().__init__(errno, message)
        self.op = op
        self.done = done

    def __str__(self) -> str:
        return str(self.strerror)


class UffdUnavailable(OSError):
    """userfaultfd cannot be opened at all; the message names every attempt and the remedies."""

    def __str__(self) -> str:
        return str(self.strerror)


class SystemCallError(OSError):
    """A system call outside userfaultfd failed (mmap, madvise, mremap)."""

    def __str__(self) -> str:
        return str(self.strerror)


class PlanFileError(ValueError):
    """A plan file or plan array is malformed; the message names the field."""


class HprofError(ValueError):
    """A truncated, corrupt or non-HPROF heap dump: the message names the byte offset and the record; ``offset``
    and ``record`` hold them."""

    def __init__(self, message: str, offset: int = 0, record: str = "") -> None:
        super().__init__(message)
        self.offset = offset
        self.record = record


class HeapCorruption(RuntimeError):
    """Verification found the heap differs from what the plan promises; names the first differing object."""


class InsufficientMemory(MemoryError):
    """Refused before anything is mapped: the operation needs more memory (or address space) than a limit on
    this process leaves. ``need`` and ``available`` are bytes, ``limit`` names the binding limit ("MemAvailable",
    "cgroup memory.max", "RLIMIT_AS", "COMPACTOR_MEMORY_LIMIT") and ``source`` where it was read, with the numbers
    (see compactor.memory)."""

    def __init__(self, message: str, need: int = 0, available: int = 0, limit: str = "", source: str = "") -> None:
        super().__init__(message)
        self.need = need
        self.available = available
        self.limit = limit
        self.source = source


class WatchdogTimeout(RuntimeError):
    """No page made progress for longer than the watchdog allows; the run was aborted."""


class KernelMoveWarning(UserWarning):
    """A MOVE strategy runs on a kernel that may have a known UFFDIO_MOVE bug (compactor/kernel_facts.py, the
    table compactor/data/move_kernel_bugs.json); issued once per process, naming the bugs and the advice."""


__all__ = [
    "HeapCorruption",
    "HprofError",
    "InsufficientMemory",
    "KernelMoveWarning",
    "PlanFileError",
    "SystemCallError",
    "UffdError",
    "UffdUnavailable",
    "WatchdogTimeout",
]
