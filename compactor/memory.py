"""The memory this process may still use, and what a collection maps: one definition, checked before mapping.

Every limit that applies to this process, each named with where it was read:

- ``MemAvailable`` (/proc/meminfo): what the machine can give without swapping;
- ``cgroup memory.max``: for this process's own memory cgroup and each of its ancestors, the limit minus the
  usage (cgroup v2: ``memory.max - memory.current``; v1: ``memory.limit_in_bytes - memory.usage_in_bytes``),
  found through /proc/self/cgroup and /proc/self/mountinfo; unlimited levels are skipped;
- ``RLIMIT_AS``: the address-space limit minus this process's VmSize (/proc/self/status). It counts mappings, not
  resident pages: a reserved from-space counts in full;
- ``COMPACTOR_MEMORY_LIMIT``: an environment variable (bytes) a user sets to stay below a budget of their own.

The first, second and fourth bound resident memory (kind ``"memory"``), the third address space
(``"address space"``); a need has both parts, and :func:`check` compares each with the limits of its kind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import _native
from .errors import InsufficientMemory

MEMORY = "memory"  # resident pages: MemAvailable, cgroups, COMPACTOR_MEMORY_LIMIT
ADDRESS_SPACE = "address space"  # mappings: RLIMIT_AS
MiB = 1 << 20


@dataclass(frozen=True)
class Limit:
    """One limit on this process: ``name`` (e.g. "cgroup memory.max"), ``source`` (where it was read, with the
    numbers), ``available`` (bytes this process may still use under it, never negative) and ``kind``
    (:data:`MEMORY` or :data:`ADDRESS_SPACE`)."""

    name: str
    source: str
    available: int
    kind: str


@dataclass(frozen=True)
class Need:
    """What an operation maps: resident ``memory`` and ``address_space`` in bytes, and ``parts`` naming each
    share (what, memory bytes, address-space bytes)."""

    memory: int
    address_space: int
    parts: Tuple[Tuple[str, int, int], ...]

    def describe(self) -> str:
        return " + ".join(f"{what} {max(m, a) // MiB} MiB" for what, m, a in self.parts if max(m, a))


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cgroup_dirs() -> List[Tuple[str, str]]:
    """This process's memory cgroup and its ancestors up to the hierarchy's root, innermost first, as
    (version "1" or "2", directory). cgroup v1's memory controller is used where it is mounted (the v2 hierarchy
    then has no memory controller); empty when neither can be read. (The core's definition, which compactor-runner
    uses too.)"""
    return [(str(v), str(d)) for v, d in _native.cgroup_dirs()]


def limits() -> List[Limit]:
    """Every limit on the memory this process may still use, read now (see the module's documentation; the core's
    definition, which compactor-runner checks too). Raises ValueError for a COMPACTOR_MEMORY_LIMIT that is not a
    number of bytes."""
    return [Limit(str(name), str(source), int(avail), ADDRESS_SPACE if address_space else MEMORY)
            for name, source, avail, address_space in _native.memory_limits()]


def binding_limit(kind: Optional[str] = None) -> Optional[Limit]:
    """The tightest limit (of ``kind``, or of any kind), or None when none can be read."""
    candidates = [lim for lim in limits() if kind is None or lim.kind == kind]
    return min(candidates, key=lambda lim: lim.available) if candidates else None


def available(kind: Optional[str] = None) -> Optional[int]:
    """Bytes this process may still use under every limit (of ``kind``, or of any kind); None when none is known."""
    lim = binding_limit(kind)
    return lim.available if lim else None


def collection_need(heap_bytes: int, *, space_mapped: bool = False, image_kept: bool = False,
                    keep_image: bool = True, concurrent: bool = True, mutators: int = 0,
                    live_bytes: Optional[int] = None, planned: bool = True, trace_events: int = 0) -> Need:
    """What one ``collect()`` maps beyond what the process already holds: the core's definition of a collection's
    own mappings (``_native.collection_need``, which compactor-runner checks as well), less what is mapped already,
    plus what only the Python side maps:

    - the moving space, ``heap_bytes`` resident and mapped, unless already mapped (``space_mapped``);
    - the pristine image the first reset keeps (``keep_image``): one more heap, unless already kept;
    - concurrent strategies: the from-space, a second heap of address space (mremap(MREMAP_DONTUNMAP) moves the
      pages and keeps the moving space mapped), and to-space pages installed while the from-space still holds its
      pages: at most the live bytes (``live_bytes``; the heap when not known). COPY gives the from-space back
      behind the compaction front and MOVE recycles its pages, so the peak stays far below that bound (measured:
      a 256 MiB heap, half live, COPY or MOVE with and without a mutator: peak RSS of the collection no higher than
      after the reset);
    - marking and planning when no plan is given: the mark bits and plan tables, an eighth of the heap;
    - fixed costs: per-thread buffers, latency samples and write logs (32 MiB + 8 MiB per mutator), and a stack
      per thread (GC, fault thread, the signal option's source, mutators) of address space;
    - ``trace_events`` > 0: each thread's trace buffer (collector, GC, fault thread, mutators).

    So a first concurrent collection of an unmapped heap needs about 2 heaps + the live bytes resident and 3 heaps
    of address space; a later one the live bytes and one heap of address space, plus the fixed costs."""
    live = heap_bytes if live_bytes is None else min(heap_bytes, live_bytes)
    core = [(str(w), int(m), int(a)) for w, m, a in _native.collection_need(heap_bytes, live, concurrent, mutators,
                                                                            trace_events)]
    parts: List[Tuple[str, int, int]] = [p for p in core if p[0] != "moving space" or not space_mapped]
    if keep_image and not image_kept:
        parts.insert(1 if not space_mapped else 0, ("pristine image", heap_bytes, heap_bytes))
    if not planned:
        parts.append(("marking and plan tables", heap_bytes // 8, heap_bytes // 8))
    return Need(sum(p[1] for p in parts), sum(p[2] for p in parts), tuple(parts))


TABLE_BYTES_PER_OBJECT = 192  # Heap.generate: the object table and its temporaries (measured: 182 B at the peak)


def table_need(objects: int) -> Need:
    """What generating an object table of about ``objects`` objects allocates (numpy arrays, the native copy)."""
    n = objects * TABLE_BYTES_PER_OBJECT
    return Need(n, n, (("object table", n, n),))


def check(need: Need, what: str, remedy: str = "use a smaller heap or raise the limit") -> None:
    """Raises :class:`~compactor.errors.InsufficientMemory` when ``need`` exceeds a limit of its kind, naming the
    one that falls shortest, with the numbers, before anything is mapped."""
    short = _native.memory_shortfall(need.memory, need.address_space, what, need.describe(), remedy)
    if short is not None:
        raise InsufficientMemory(short["message"], need=short["need"], available=short["available"],
                                 limit=short["limit"], source=short["source"])


def _events_file(cgroup_dir: Optional[str]) -> Optional[str]:
    if cgroup_dir is None:
        dirs = cgroup_dirs()
        if not dirs:
            return None
        version, cgroup_dir = dirs[0]
    else:
        version = "2" if os.path.exists(os.path.join(cgroup_dir, "memory.events")) else "1"
    return os.path.join(cgroup_dir, "memory.events" if version == "2" else "memory.oom_control")


def oom_kills(cgroup_dir: Optional[str] = None) -> Optional[int]:
    """The OOM-killer kills counted in a memory cgroup (this process's own by default; v2 memory.events
    ``oom_kill``, v1 memory.oom_control ``oom_kill``), or None where not readable. A child inherits the cgroup:
    compare the count before and after it ran to tell an OOM kill from another SIGKILL."""
    path = _events_file(cgroup_dir)
    for line in ((_read(path) or "") if path else "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return None


def describe_death(returncode: int, oom_before: Optional[int], cgroup_dir: Optional[str] = None) -> str:
    """Why a child that exited with ``returncode`` (negative: the signal) ended: "killed by the OOM killer
    (<cgroup>/memory.events oom_kill N)" when it died of SIGKILL and the OOM kills of its cgroup (``cgroup_dir``,
    this process's by default) rose above ``oom_before``; else the signal or the exit status."""
    if returncode >= 0:
        return f"exit status {returncode}"
    import signal

    sig = -returncode
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
    after = oom_kills(cgroup_dir)
    if sig == signal.SIGKILL and after is not None and oom_before is not None and after > oom_before:
        return f"killed by the OOM killer ({_events_file(cgroup_dir)} oom_kill {after})"
    return f"killed by {name}"
