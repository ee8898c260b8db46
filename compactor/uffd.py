"""A complete Python binding of Linux userfaultfd, over compactor's C++ core.

Addresses are plain ints. Every call that may block or touch registered memory releases the GIL. Errors are
the kernel's errno, never hidden: :class:`UffdError` carries ``errno``, ``op`` and ``done`` (bytes completed).

Example::

    from compactor import uffd
    feats = uffd.probe()
    with uffd.Userfaultfd() as u, uffd.Mapping(uffd.PAGE_SIZE) as dst, uffd.Mapping(uffd.PAGE_SIZE) as src:
        memoryview(src)[:5] = b"hello"
        u.register(dst.address, dst.length)
        u.move(dst.address, src.address, uffd.PAGE_SIZE)      # dst now holds b"hello", src reads zeros
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Optional

import numpy as np

from . import _native
from .errors import UffdError, UffdUnavailable

PAGE_SIZE: int = _native.page_size()

_FEATURE_BITS = {name: bit for bit, name in _native.feature_names()}
_IOCTL_BITS = {name: bit for bit, name in _native.ioctl_names()}

REGISTER_MODE_MISSING = 1 << 0
REGISTER_MODE_WP = 1 << 1
REGISTER_MODE_MINOR = 1 << 2
MODE_DONTWAKE = 1 << 0  # COPY, MOVE, ZEROPAGE, CONTINUE and POISON all use bit 0 for DONTWAKE
COPY_MODE_WP = 1 << 1
MOVE_MODE_ALLOW_SRC_HOLES = 1 << 1
WRITEPROTECT_MODE_WP = 1 << 0
WRITEPROTECT_MODE_DONTWAKE = 1 << 1
PAGEFAULT_FLAG_WRITE = 1 << 0
PAGEFAULT_FLAG_WP = 1 << 1
PAGEFAULT_FLAG_MINOR = 1 << 2


def _names(bits: int, table: Dict[str, int]) -> FrozenSet[str]:
    return frozenset(name for name, bit in table.items() if bits & bit)


@dataclass(frozen=True)
class Features:
    """What userfaultfd offers this process: ``"move" in probe()``."""

    bits: int
    ioctls: int
    names: FrozenSet[str]
    opened_by: str = ""

    def __contains__(self, name: object) -> bool:
        return name in self.names


def probe(*, user_mode_only: bool = True) -> Features:
    """Two-step feature probe on a throwaway fd. Never raises for a missing feature; raises
    :class:`UffdUnavailable` when userfaultfd cannot be opened at all."""
    r = _native.probe(user_mode_only)
    return Features(bits=r["features"], ioctls=r["ioctls"], names=_names(r["features"], _FEATURE_BITS),
                    opened_by=r["opened_by"])


def feature_bit(name: str) -> int:
    try:
        return _FEATURE_BITS[name]
    except KeyError:
        raise ValueError(f"unknown userfaultfd feature {name!r}; known: {', '.join(sorted(_FEATURE_BITS))}") from None


def _check_range(what: str, start: int, length: int) -> None:
    for name, v in (("address", start), ("length", length)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{what}: {name} must be an int, not {type(v).__name__}")
        if v < 0:
            raise ValueError(f"{what}: {name} must be non-negative, got {v}")
        if v >= 1 << 64:
            raise ValueError(f"{what}: {name} {v:#x} does not fit in 64 bits")


@dataclass(frozen=True)
class Event:
    """One message read from a userfaultfd. ``kind`` is "pagefault", "fork", "remap", "remove" or "unmap"."""

    kind: str
    address: int = 0
    flags: int = 0
    thread_id: int = 0
    arg: int = 0  # fork: the child's uffd; remap: new address; remove/unmap: end
    length: int = 0  # remap: length


class Userfaultfd:
    """A userfaultfd after the handshake, asking the kernel for exactly ``features`` (names, see :func:`probe`).

    ``features`` (a frozenset) is what was negotiated; ``available`` what the kernel offers.
    """

    def __init__(self, features: Iterable[str] = (), *, user_mode_only: bool = True, nonblocking: bool = True) -> None:
        if isinstance(features, str):
            features = (features,)
        bits = 0
        for name in features:
            bits |= feature_bit(name)
        self._u = _native.Uffd(bits, bool(user_mode_only), bool(nonblocking))

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> "Userfaultfd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._u.close()

    @property
    def closed(self) -> bool:
        return self._u.closed

    def fileno(self) -> int:
        return self._u.fileno()

    @property
    def features(self) -> FrozenSet[str]:
        return _names(self._u.features, _FEATURE_BITS)

    @property
    def available(self) -> FrozenSet[str]:
        return _names(self._u.available, _FEATURE_BITS)

    @property
    def opened_by(self) -> str:
        return self._u.opened_by

    # -- ranges ----------------------------------------------------------------------------------------
    def register(self, start: int, length: int, *, missing: bool = True, wp: bool = False,
                 minor: bool = False) -> FrozenSet[str]:
        """Registers a range; returns the names of the ioctls allowed on it."""
        _check_range("register", start, length)
        mode = ((REGISTER_MODE_MISSING if missing else 0) | (REGISTER_MODE_WP if wp else 0)
                | (REGISTER_MODE_MINOR if minor else 0))
        if mode == 0:
            raise ValueError("register: choose at least one of missing, wp, minor")
        return _names(self._u.register(start, length, mode), _IOCTL_BITS)

    def unregister(self, start: int, length: int) -> None:
        _check_range("unregister", start, length)
        self._u.unregister(start, length)

    # -- installing ioctls (partial progress continued; final error raised with .done) -----------------
    def copy(self, dst: int, src: int, length: int, *, dontwake: bool = False, wp: bool = False) -> int:
        _check_range("copy", dst, length)
        _check_range("copy", src, 0)
        return self._u.copy(dst, src, length, (MODE_DONTWAKE if dontwake else 0) | (COPY_MODE_WP if wp else 0))

    def move(self, dst: int, src: int, length: int, *, dontwake: bool = False, allow_src_holes: bool = False) -> int:
        _check_range("move", dst, length)
        _check_range("move", src, 0)
        return self._u.move(dst, src, length,
                            (MODE_DONTWAKE if dontwake else 0) | (MOVE_MODE_ALLOW_SRC_HOLES if allow_src_holes else 0))

    def zeropage(self, start: int, length: int, *, dontwake: bool = False) -> int:
        _check_range("zeropage", start, length)
        return self._u.zeropage(start, length, MODE_DONTWAKE if dontwake else 0)

    def continue_(self, start: int, length: int, *, dontwake: bool = False) -> int:
        _check_range("continue", start, length)
        return self._u.continue_(start, length, MODE_DONTWAKE if dontwake else 0)

    def poison(self, start: int, length: int) -> int:
        _check_range("poison", start, length)
        return self._u.poison(start, length, 0)

    def wake(self, start: int, length: int) -> None:
        _check_range("wake", start, length)
        self._u.wake(start, length)

    def writeprotect(self, start: int, length: int, enable: bool = True, *, dontwake: bool = False) -> None:
        _check_range("writeprotect", start, length)
        self._u.writeprotect(start, length,
                             (WRITEPROTECT_MODE_WP if enable else 0) | (WRITEPROTECT_MODE_DONTWAKE if dontwake else 0))

    def read_events(self, max_events: int = 64) -> List[Event]:
        """Nonblocking batched read: [] when no event is pending."""
        if not isinstance(max_events, int) or max_events < 1:
            raise ValueError("read_events: max_events must be a positive int")
        return [Event(*e) for e in self._u.read_events(max_events)]


class Mapping(mmap.mmap):
    """An anonymous private read-write mapping (an :class:`mmap.mmap`), with its ``address`` as an int.

    Buffer protocol: ``memoryview(m)``, ``numpy.frombuffer(m, dtype)``. ``close()`` raises BufferError while views
    exist, so a view can never outlive the memory. ``dontfork`` applies MADV_DONTFORK (a fork cannot make its pages
    non-exclusive, which would make UFFDIO_MOVE fail with EBUSY); ``hugepage`` MADV_HUGEPAGE / MADV_NOHUGEPAGE.
    """

    def __new__(cls, length: int, *, dontfork: bool = False, hugepage: Optional[bool] = None) -> "Mapping":  # noqa: ARG004 (read by __init__)
        if isinstance(length, bool) or not isinstance(length, int):
            raise TypeError(f"Mapping: length must be an int, not {type(length).__name__}")
        if length <= 0:
            raise ValueError(f"Mapping: length must be positive, got {length}")
        return super().__new__(cls, -1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)

    def __init__(self, length: int, *, dontfork: bool = False, hugepage: Optional[bool] = None) -> None:
        self.length = length
        view = np.frombuffer(self, dtype=np.uint8)
        self.address = int(view.ctypes.data)
        del view
        if dontfork:
            self.madvise(mmap.MADV_DONTFORK)
        if hugepage is not None:
            self.madvise(mmap.MADV_HUGEPAGE if hugepage else mmap.MADV_NOHUGEPAGE)

    def dontneed(self, offset: int = 0, length: Optional[int] = None) -> None:
        """MADV_DONTNEED: the pages become missing again (private anonymous memory reads zeros afterwards)."""
        self.madvise(mmap.MADV_DONTNEED, offset, self.length - offset if length is None else length)


__all__ = [
    "PAGE_SIZE", "Event", "Features", "Mapping", "UffdError", "UffdUnavailable", "Userfaultfd", "probe",
    "feature_bit",
]
