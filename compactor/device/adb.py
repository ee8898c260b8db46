"""A device reached over ADB (adb-shell, pure Python): connection, keys, quoting, pushes that skip unchanged
files, commands with their exit status and stderr."""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REMOTE_DIR = "/data/local/tmp/compactor"


class DeviceError(RuntimeError):
    """A device problem with its remedy: unreachable, unauthorized, wrong ABI, userfaultfd denied, ..."""


@dataclass
class CommandResult:
    status: int
    stdout: str
    stderr: str


def adb_key_path() -> Path:
    return Path(os.environ.get("ADB_VENDOR_KEYS") or Path.home() / ".android" / "adbkey")


def load_signer():
    """Google adb's key (~/.android/adbkey), generated when missing, as adb does."""
    from adb_shell.auth.keygen import keygen
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    key = adb_key_path()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(key))
    pub = Path(str(key) + ".pub")
    return PythonRSASigner(pub.read_text() if pub.exists() else "", key.read_text())


def parse_serial(serial: Optional[str]) -> str:
    serial = serial or os.environ.get("ANDROID_SERIAL")
    if not serial:
        raise DeviceError("no device given: pass --device host:port (or USB serial), or set ANDROID_SERIAL")
    return serial


class Device:
    """One ADB connection. ``serial`` is host:port (TCP) or, with adb-shell's usb extra installed, a USB serial."""

    def __init__(self, serial: Optional[str] = None, timeout: float = 10.0) -> None:
        self.serial = parse_serial(serial)
        try:
            from adb_shell.adb_device import AdbDeviceTcp, AdbDeviceUsb  # noqa: F401
        except ImportError as e:  # pragma: no cover
            raise DeviceError("adb-shell is not installed: pip install 'compactor[device]'") from e
        from adb_shell.adb_device import AdbDeviceTcp

        self.timeout = timeout
        if ":" in self.serial:
            host, port = self.serial.rsplit(":", 1)
            self._dev = AdbDeviceTcp(host, int(port), default_transport_timeout_s=timeout)
        else:
            try:
                from adb_shell.adb_device import AdbDeviceUsb
                self._dev = AdbDeviceUsb(serial=self.serial, default_transport_timeout_s=timeout)
            except Exception as e:
                raise DeviceError(f"USB device {self.serial}: adb-shell's usb extra is needed "
                                  f"(pip install 'adb-shell[usb]') and the device must be plugged in: {e}") from e
        self._connect()

    def _connect(self) -> None:
        from adb_shell.exceptions import DeviceAuthError

        try:
            self._dev.connect(rsa_keys=[load_signer()], auth_timeout_s=self.timeout, read_timeout_s=self.timeout)
        except DeviceAuthError as e:
            self._dev.close()
            raise DeviceError(f"{self.serial}: unauthorized: accept the USB-debugging prompt for the key "
                              f"{adb_key_path()}.pub on the phone, then retry") from e
        except Exception as e:
            self._dev.close()
            raise DeviceError(f"{self.serial}: device unreachable ({type(e).__name__}: {e}); check the address, "
                              "that adb over TCP is enabled (adb tcpip 5555) or the emulator runs") from e

    def close(self) -> None:
        self._dev.close()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- commands -------------------------------------------------------------------------------------------
    def run(self, argv, timeout: float = 600.0, check: bool = False) -> CommandResult:
        """Runs argv (each word quoted for the device's shell); captures stdout, stderr and the exit status."""
        cmd = " ".join(shlex.quote(str(a)) for a in argv)
        marker = "__compactor_rc__"
        err = f"{REMOTE_DIR}/.stderr"
        script = (f"mkdir -p {shlex.quote(REMOTE_DIR)}; {cmd} 2>{shlex.quote(err)}; "
                  f"echo {marker}$?; cat {shlex.quote(err)} 1>&2 2>/dev/null; rm -f {shlex.quote(err)}")
        try:
            out = self._dev.shell(script, transport_timeout_s=timeout, read_timeout_s=timeout, timeout_s=timeout,
                                  decode=True)
        except Exception as e:  # adb-shell's transport and protocol errors
            raise DeviceError(f"{self.serial}: lost the device while running `{cmd}`: {type(e).__name__}: {e}") from e
        # adb-shell's shell() merges streams: split the stdout part from the stderr part by the marker.
        head, sep, tail = out.rpartition(marker)
        if not sep:
            raise DeviceError(f"{self.serial}: no exit status from the device for: {cmd}")
        status_text, _, stderr = tail.partition("\n")
        try:
            status = int(status_text.strip())
        except ValueError:
            raise DeviceError(f"{self.serial}: unreadable exit status {status_text!r}") from None
        res = CommandResult(status, head, stderr)
        if check and status != 0:
            raise DeviceError(f"{self.serial}: `{cmd}` failed with status {status}: {stderr.strip() or head.strip()[-500:]}")
        return res

    def getprop(self, name: str) -> str:
        r = self.run(["getprop", name])
        return r.stdout.strip() if r.status == 0 else ""

    # -- files ---------------------------------------------------------------------------------------------
    def sha256(self, remote: str) -> Optional[str]:
        r = self.run(["sha256sum", remote])
        if r.status != 0:
            return None
        return r.stdout.split()[0] if r.stdout.split() else None

    def push(self, local, remote: str, mode: int = 0o100644, skip_if_same: bool = True) -> bool:
        """Pushes `local` to `remote` unless an identical copy (sha256) is there already; returns True if pushed."""
        local = Path(local)
        if skip_if_same:
            digest = hashlib.sha256(local.read_bytes()).hexdigest()
            if self.sha256(remote) == digest:
                return False
        self.run(["mkdir", "-p", os.path.dirname(remote)], check=True)
        self._dev.push(str(local), remote, st_mode=mode, read_timeout_s=self.timeout * 6)
        return True

    def pull_text(self, remote: str) -> str:
        r = self.run(["cat", remote], check=True)
        return r.stdout

    def remove(self, *remote: str) -> None:
        self.run(["rm", "-f", *remote])
