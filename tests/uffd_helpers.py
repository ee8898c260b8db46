"""Small helpers for the userfaultfd tests (no mocks: real mappings, real ioctls)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from compactor import uffd

PS = uffd.PAGE_SIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def fill(m: uffd.Mapping, page: int, byte: int) -> None:
    m[page * PS:(page + 1) * PS] = bytes([byte]) * PS


def page_of(m: uffd.Mapping, page: int) -> bytes:
    return m[page * PS:(page + 1) * PS]


def resident(address: int, pages: int) -> list:
    """mincore(2): which pages are populated, without touching them."""
    vec = (ctypes.c_ubyte * pages)()
    if _libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(pages * PS), vec) != 0:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return [bool(v & 1) for v in vec]


def populate_dst(u: uffd.Userfaultfd, dst: uffd.Mapping, page: int, byte: int) -> None:
    """Populates one page of a registered destination (through COPY, never by touching it)."""
    with uffd.Mapping(PS) as tmp:
        fill(tmp, 0, byte)
        u.copy(dst.address + page * PS, tmp.address, PS)


def fork_a_child_that_exits() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def anon_huge_kb(address: int) -> int:
    """AnonHugePages (kB) of the mapping that holds `address` (/proc/self/smaps)."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            if "-" in line.split()[0] and not line.split()[0].endswith(":"):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                inside = lo <= address < hi
            elif inside and line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def madvise(address: int, length: int, advice: int) -> int:
    """madvise(2) through ctypes, which releases the GIL: 0, or the errno."""
    if _libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_int(advice)) != 0:
        return ctypes.get_errno()
    return 0
