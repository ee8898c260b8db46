"""Swap and zram, as Android phones have them: what this machine offers, and a zram swap device for tests and
benchmarks that the machine gets back exactly as it was.

    with compactor.swap.zram_swap("512MiB") as info:   # root, zram, and no swap active yet
        ...                                             # MADV_PAGEOUT now swaps anonymous pages to zram
    # swapoff, zram reset (and the device removed again if it was hot-added)

Where swap is already active it is used as it is: nothing is set up, nothing is torn down.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from .heap import parse_size

ZRAM_CONTROL = Path("/sys/class/zram-control")
PAGEMAP_PRESENT = 1 << 63
PAGEMAP_SWAP = 1 << 62


class SwapError(RuntimeError):
    """Swap cannot be set up here; the message names what is missing and the remedy."""


@dataclass
class SwapDevice:
    name: str
    kind: str
    size_bytes: int
    used_bytes: int
    priority: int


@dataclass
class SwapInfo:
    active: List[SwapDevice] = field(default_factory=list)
    zram: bool = False                 # the kernel has zram (a device, or the control interface to add one)
    zram_devices: List[str] = field(default_factory=list)
    root: bool = False
    configured_by_us: Optional[str] = None  # the zram device this process set up, if any

    def to_dict(self) -> Dict[str, Any]:
        return {"active": [d.__dict__ for d in self.active], "zram": self.zram, "zram_devices": self.zram_devices,
                "root": self.root, "configured_by_us": self.configured_by_us}


def active_swaps() -> List[SwapDevice]:
    """The lines of /proc/swaps."""
    out: List[SwapDevice] = []
    try:
        with open("/proc/swaps") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) >= 5:
            out.append(SwapDevice(parts[0], parts[1], int(parts[2]) * 1024, int(parts[3]) * 1024, int(parts[4])))
    return out


def probe() -> SwapInfo:
    devices = sorted(p.name for p in Path("/sys/block").glob("zram*")) if Path("/sys/block").is_dir() else []
    return SwapInfo(active=active_swaps(), zram=bool(devices) or ZRAM_CONTROL.is_dir(), zram_devices=devices,
                    root=os.geteuid() == 0)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _run(*cmd: str) -> None:
    exe = shutil.which(cmd[0]) or shutil.which(cmd[0], path="/usr/sbin:/sbin")
    if exe is None:
        raise SwapError(f"{cmd[0]} not found: apt-get install util-linux")
    p = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True)
    if p.returncode != 0:
        raise SwapError(f"{' '.join(cmd)} failed: {(p.stderr or p.stdout).strip()}")


def _free_zram_device() -> Tuple[str, bool]:
    """(name, hot_added): an unused zram device (disksize 0), hot-adding one when all are in use."""
    for dev in sorted(Path("/sys/block").glob("zram*")):
        try:
            if int((dev / "disksize").read_text()) == 0:
                return dev.name, False
        except (OSError, ValueError):
            continue
    if (ZRAM_CONTROL / "hot_add").exists():
        n = int((ZRAM_CONTROL / "hot_add").read_text())
        return f"zram{n}", True
    raise SwapError("every zram device is in use and this kernel cannot add one (/sys/class/zram-control)")


@contextlib.contextmanager
def zram_swap(size: Union[str, int] = "512MiB") -> Iterator[SwapInfo]:
    """A zram swap device of ``size`` for the duration of the block, restored afterwards (also on errors).
    Swap already active: it is used as it is. Raises SwapError when this user is not root or the kernel has no
    zram."""
    info = probe()
    if info.active:
        yield info
        return
    if not info.root:
        raise SwapError("setting up zram swap needs root (no swap is active here): run as root, or configure swap "
                        "yourself and the tool uses it as it is")
    if not info.zram:
        modprobe = shutil.which("modprobe") or shutil.which("modprobe", path="/usr/sbin:/sbin")
        if modprobe:
            subprocess.run([modprobe, "zram"], capture_output=True)
        info = probe()
        if not info.zram:
            raise SwapError("this kernel has no zram (CONFIG_ZRAM): configure another swap device yourself")
    nbytes = parse_size(size)
    name, hot_added = _free_zram_device()
    dev = Path("/sys/block") / name
    node = f"/dev/{name}"
    swapped_on = False
    try:
        _write(dev / "disksize", str(nbytes))
        _run("mkswap", node)
        _run("swapon", node)
        swapped_on = True
        info = probe()
        info.configured_by_us = node
        yield info
    finally:
        errors = []
        if swapped_on:
            try:
                _run("swapoff", node)
            except SwapError as e:
                errors.append(str(e))
        try:
            _write(dev / "reset", "1")
        except OSError as e:
            errors.append(f"resetting {name}: {e}")
        if hot_added:
            try:
                _write(ZRAM_CONTROL / "hot_remove", name[len("zram"):])
            except OSError as e:
                errors.append(f"removing {name}: {e}")
        if errors:
            raise SwapError("could not restore the machine's swap: " + "; ".join(errors))


def pagemap(address: int, pages: int, page_size: int) -> List[int]:
    """The /proc/self/pagemap entries of ``pages`` pages from ``address`` (bit 63 present, bit 62 swapped)."""
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(address // page_size * 8)
        data = f.read(8 * pages)
    return [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)]
