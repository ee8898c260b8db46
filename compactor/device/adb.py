"""A device reached over ADB (adb-shell, pure Python): connection, keys, quoting, pushes that skip unchanged
files, commands with their exit status and stderr."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Optional, Set, Union

REMOTE_DIR = "/data/local/tmp/compactor"
StrPath = Union[str, "os.PathLike[str]"]  # a local path


class DeviceError(RuntimeError):
    """A device problem with its remedy: unreachable, unauthorized, wrong ABI, userfaultfd denied, ..."""


@dataclass
class CommandResult:
    status: int
    stdout: str
    stderr: str


def adb_key_path() -> Path:
    """The user's own key, as Google's adb keeps it: ``~/.android/adbkey`` (``$ANDROID_USER_HOME/adbkey``)."""
    home = os.environ.get("ANDROID_USER_HOME")
    return Path(home) / "adbkey" if home else Path.home() / ".android" / "adbkey"


def vendor_key_paths() -> List[Path]:
    """The extra keys of ``$ADB_VENDOR_KEYS``, as adb reads it: a ``:``-separated list of key files and folders
    (every ``*.adbkey`` in a folder); read only, never created or modified."""
    keys: List[Path] = []
    for entry in filter(None, os.environ.get("ADB_VENDOR_KEYS", "").split(":")):
        p = Path(entry)
        if p.is_dir():
            keys += sorted(q for q in p.iterdir() if q.name.endswith(".adbkey") and q.is_file())
        elif p.is_file():
            keys.append(p)
    return keys


_warned_keys: Set[Path] = set()


def ensure_user_key() -> Path:
    """The user's key, generated when missing: 0600 in a 0700 folder, written atomically (made in a private
    temporary folder and linked into place, so it never exists with wider bits). An existing key that others can
    read is used, with one warning."""
    key = adb_key_path()
    if key.exists():
        mode = stat.S_IMODE(key.stat().st_mode)
        if mode & 0o077 and key not in _warned_keys:
            _warned_keys.add(key)
            sys.stderr.write(f"warning: {key} is readable or writable by others (mode {mode:o}): every authorized "
                             f"phone trusts it; run `chmod 600 {key}`\n")
        return key
    from adb_shell.auth.keygen import keygen

    old = os.umask(0o077)
    try:
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".adbkey-", dir=key.parent))
        try:
            keygen(str(work / "adbkey"))
            os.chmod(work / "adbkey", 0o600)
            os.chmod(work / "adbkey.pub", 0o644)
            pub = Path(str(key) + ".pub")
            if not pub.exists():
                os.link(work / "adbkey.pub", pub)
            try:
                os.link(work / "adbkey", key)  # fails if another process made one meanwhile: keep theirs
            except FileExistsError:
                pass
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        os.umask(old)
    return key


def load_signers() -> List[Any]:  # adb_shell PythonRSASigner objects (adb_shell ships no types)
    """Signers for the user's key (generated when missing) and then each key of ``$ADB_VENDOR_KEYS``, tried in this
    order by the connection, as adb does."""
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    signers = []
    for key in [ensure_user_key()] + vendor_key_paths():
        pub = Path(str(key) + ".pub")
        signers.append(PythonRSASigner(pub.read_text() if pub.exists() else "", key.read_text()))
    return signers


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
            self._dev.connect(rsa_keys=load_signers(), auth_timeout_s=self.timeout, read_timeout_s=self.timeout)
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands -------------------------------------------------------------------------------------------
    def run(self, argv: Iterable[object], timeout: float = 600.0, check: bool = False) -> CommandResult:
        """Runs argv (each word quoted for the device's shell); captures stdout, stderr and the exit status."""
        cmd = " ".join(shlex.quote(str(a)) for a in argv)
        marker = "__compactor_rc__"
        err = f"{REMOTE_DIR}/.stderr"
        script = (f"mkdir -p {shlex.quote(REMOTE_DIR)}; chmod 700 {shlex.quote(REMOTE_DIR)}; "
                  f"{cmd} 2>{shlex.quote(err)}; "
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
            raise DeviceError(f"{self.serial}: `{cmd}` failed with status {status}: "
                              f"{stderr.strip() or head.strip()[-500:]}")
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

    def push(self, local: StrPath, remote: str, mode: int = 0o100644, skip_if_same: bool = True) -> bool:
        """Pushes `local` to `remote` unless an identical copy (sha256) is there already; returns True if pushed."""
        path = Path(local)
        if skip_if_same:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if self.sha256(remote) == digest:
                self.run(["chmod", format(mode & 0o7777, "o"), remote], check=True)
                return False
        self.run(["mkdir", "-p", os.path.dirname(remote)], check=True)
        self._dev.push(str(path), remote, st_mode=mode, read_timeout_s=self.timeout * 6)
        self.run(["chmod", format(mode & 0o7777, "o"), remote], check=True)  # adbd may not apply st_mode
        return True

    def pull(self, remote: str, local: StrPath) -> None:
        try:
            self._dev.pull(remote, str(local), read_timeout_s=self.timeout * 60)
        except Exception as e:  # adb-shell's transport and protocol errors
            raise DeviceError(f"{self.serial}: pulling {remote} failed: {type(e).__name__}: {e}") from e

    def pull_text(self, remote: str) -> str:
        r = self.run(["cat", remote], check=True)
        return r.stdout

    def remove(self, *remote: str) -> None:
        self.run(["rm", "-f", *remote])
