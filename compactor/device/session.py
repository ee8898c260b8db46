"""The benchmark's device side: probe the device, push the runner (only when its sha256 differs) and the plan to
/data/local/tmp/compactor/, run collections there, and clean up the plan files afterwards."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import numpy as np

from ..errors import HeapCorruption
from ..kernel_facts import evaluate as kernel_move_facts
from .adb import REMOTE_DIR, Device, DeviceError
from .runner_build import aarch64_runner

RUNNER = f"{REMOTE_DIR}/compactor-runner"
EMULATED_MARKERS = ("dummy-virt", "qemu", "QEMU", "goldfish", "ranchu")


class DeviceSession:
    def __init__(self, serial: Optional[str], runner: Optional[Path] = None) -> None:
        self.device = Device(serial)
        self.serial = self.device.serial
        self.plan_remote: Optional[str] = None
        abi = (self.device.getprop("ro.product.cpu.abi") or self.device.run(["uname", "-m"]).stdout.strip())
        if abi not in ("arm64-v8a", "aarch64", "arm64"):
            raise DeviceError(f"{self.serial} is not an arm64 device (ABI {abi!r}); the runner is built for aarch64")
        local = runner or aarch64_runner()
        self.runner_sha256 = hashlib.sha256(Path(local).read_bytes()).hexdigest()
        self.device.push(local, RUNNER, mode=0o100700)
        self._check_runner()
        r = self.device.run([RUNNER, "--probe"])
        if r.status != 0:
            raise DeviceError(f"{self.serial}: compactor-runner --probe failed ({r.status}): {r.stderr.strip()}")
        self.probe: Dict[str, Any] = json.loads(r.stdout)
        if not self.probe.get("userfaultfd"):
            raise DeviceError(f"{self.serial}: userfaultfd is denied to this user (uid {self.probe.get('uid')}): "
                              f"{self.probe.get('error', '')}. On Android, SELinux may deny userfaultfd to the shell "
                              "domain: run as root (adb root) or on a build that allows it")
        self.model = self.device.getprop("ro.product.model")
        self.emulated = (self.device.getprop("ro.kernel.qemu") == "1"
                         or any(m in self.probe.get("machine", "") for m in EMULATED_MARKERS))

    @property
    def page_size(self) -> int:
        return int(self.probe["page_size"])

    def environment(self) -> Dict[str, Any]:
        p = self.probe
        return {
            "kernel": p["kernel"], "arch": p["arch"], "page_size": p["page_size"], "cpus": self._cpus(),
            "userfaultfd": True, "opened_by": p.get("opened_by"), "features": p.get("features", []),
            "feature_bits": p.get("feature_bits", 0), "move": p.get("move", False), "sigbus": p.get("sigbus", False),
            "mremap_dontunmap": p.get("mremap_dontunmap", False), "uid": p.get("uid"),
            "where": "device", "serial": self.serial, "model": self.model or p.get("machine") or "unknown",
            "machine": p.get("machine", ""), "emulated": self.emulated, "virtualized": self.emulated,
            # the device kernel's MOVE facts, by its release's version (nothing is probed on the device)
            "move_kernel": kernel_move_facts(p["kernel"], move=bool(p.get("move", False)), probe=False),
        }

    def _cpus(self) -> int:
        r = self.device.run(["cat", "/proc/cpuinfo"])
        return max(1, len(re.findall(r"^processor\s*:", r.stdout, re.M)))

    def memory_available(self) -> Optional[int]:
        r = self.device.run(["cat", "/proc/meminfo"])
        m = re.search(r"^MemAvailable:\s+(\d+)", r.stdout, re.M)
        return int(m.group(1)) * 1024 if m else None

    def measure_floor(self, pages: int, repeat: int) -> Dict[str, Any]:
        self._check_runner()
        r = self.device.run([RUNNER, "--floor", "--floor-pages", str(pages), "--repeat", str(repeat)], timeout=1800)
        if r.status != 0:
            raise DeviceError(f"{self.serial}: install floor failed ({r.status}): {r.stderr.strip()}")
        return {m["name"]: m for m in json.loads(r.stdout)}

    def measure_compaction_floor(self, repeat: int) -> Dict[str, Any]:
        """The compaction floor over the pushed plan, measured by the runner on the device."""
        self._check_runner()
        r = self.device.run([RUNNER, self.plan_remote, "--compaction-floor", "--repeat", str(repeat)], timeout=1800)
        if r.status != 0:
            raise DeviceError(f"{self.serial}: compaction floor failed ({r.status}): {r.stderr.strip()}")
        return {m["name"]: m for m in json.loads(r.stdout)}

    def push_plan(self, local: Union[str, Path]) -> None:
        self.plan_remote = f"{REMOTE_DIR}/heap.plan"
        self.device.push(local, self.plan_remote, skip_if_same=False)

    def _check_runner(self) -> None:
        """The runner on the device is the one pushed: checked again right before each run."""
        if self.device.sha256(RUNNER) != self.runner_sha256:
            raise DeviceError(f"{self.serial}: {RUNNER} is not the runner this tool pushed (sha256 differs): "
                              f"something else wrote {REMOTE_DIR}; refusing to run it")

    def collect(self, strategy: str, faults: str, mutators: int, batch: int, seed: int,
                flags: Iterable[str] = ()) -> Dict[str, Any]:
        self._check_runner()
        cmd = [RUNNER, self.plan_remote, "--strategy", strategy, "--mutators", str(mutators), "--batch", str(batch),
               "--seed", str(seed), *flags]
        if faults != "none":
            cmd += ["--faults", faults]
        r = self.device.run(cmd, timeout=1800)
        if r.status == 3:
            raise HeapCorruption(f"on {self.serial}: {r.stderr.strip()}")
        if r.status != 0:
            raise DeviceError(f"{self.serial}: compactor-runner failed ({r.status}): {r.stderr.strip()}")
        raw: Dict[str, Any] = json.loads(r.stdout)["runs"][0]
        raw["latency_samples_ns"] = np.zeros(0, dtype=np.uint64)
        return raw

    def dump_app_heap(self, package: str) -> str:
        """Dumps the heap of a running app with `am dumpheap`, pulls it into a private temporary file and returns
        its path (removed from the device afterwards)."""
        import tempfile
        import time

        if self.device.run(["sh", "-c", "command -v am"]).status != 0:
            raise DeviceError(f"{self.serial} has no `am` (the activity manager): it is not an Android system image "
                              f"(the emulated device is a plain Linux). Dump the heap yourself and pass --heap-from")
        r = self.device.run(["pidof", package])
        if r.status != 0 or not r.stdout.split():
            raise DeviceError(f"{self.serial}: no running process of {package}: start the app first")
        pid = r.stdout.split()[0]
        remote = f"{REMOTE_DIR}/app.hprof"
        self.device.run(["am", "dumpheap", pid, remote], check=True, timeout=600)
        size, deadline = -1, time.monotonic() + 300
        while time.monotonic() < deadline:  # am dumpheap returns before the dump is complete
            s = self.device.run(["stat", "-c", "%s", remote])
            now = int(s.stdout.strip() or -1) if s.status == 0 else -1
            if now > 0 and now == size:
                break
            size = now
            time.sleep(1.0)
        folder = tempfile.mkdtemp(prefix="compactor-dump-")
        local = f"{folder}/{package}.hprof"
        try:
            self.device.pull(remote, local)
        finally:
            self.device.remove(remote)
        return local

    def close(self) -> None:
        try:
            if self.plan_remote:
                self.device.remove(self.plan_remote)
        finally:
            self.device.close()
