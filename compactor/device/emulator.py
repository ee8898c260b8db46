"""An emulated arm64 device for tests and demos: Debian's arm64 kernel under qemu-system-aarch64, an initramfs with
busybox and Debian's adbd, ADB forwarded to 127.0.0.1 only over qemu's restricted user-mode network (the guest
reaches nothing but that forward).

Assets are built once and cached under ``$XDG_CACHE_HOME/compactor/emulator`` (default ``~/.cache``): arm64
packages are fetched with a private apt root (the host's dpkg is never touched), from the Debian mirror this
host's own apt configuration names. Needs ``qemu-system-aarch64`` (Debian: qemu-system-arm) and network access to
that mirror the first time.

    python -m compactor.device emulator start [--page-size 4k|16k] [--kernel 6.12|6.1] [--port N]
    python -m compactor.device emulator status | stop
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .cache import CacheError, cache_home, check_private, private_dir

KERNELS = {
    # (kernel, page size) -> (suite, package-name regex)
    ("6.12", "4k"): ("bookworm-backports", r"^linux-image-6\.12\.[0-9]+\+[a-z0-9.~]+-cloud-arm64-unsigned$"),
    ("6.12", "16k"): ("bookworm-backports", r"^linux-image-6\.12\.[0-9]+\+[a-z0-9.~]+-arm64-16k-unsigned$"),
    ("6.1", "4k"): ("bookworm", r"^linux-image-6\.1\.0-[0-9]+-cloud-arm64-unsigned$"),
}
ADBD_PACKAGES = ["adbd", "android-libbase", "android-libboringssl", "android-libcutils", "android-liblog", "libbrotli1",
                 "liblz4-1", "libprotobuf32", "libsystemd0", "libzstd1", "libstdc++6", "libgcc-s1", "libc6", "zlib1g",
                 "libcap2", "libgcrypt20", "liblzma5", "libgpg-error0"]
NET_MODULES = ["virtio_pci", "virtio_net"]  # plus their dependencies, where they are modules

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /data/local/tmp /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /data
mkdir -p /data/local/tmp
for m in {modules}; do insmod /lib/modules/$m.ko; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
echo 1 > /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null
echo "compactor emulated device: {label}" > /etc/motd
cd /data/local/tmp
/usr/sbin/adbd &
while true; do sleep 3600; done
"""


class EmulatorError(RuntimeError):
    pass


def cache_dir() -> Path:
    """The emulator's private cache (0700): what qemu executes comes from here."""
    try:
        return private_dir(cache_home() / "emulator")
    except CacheError as e:
        raise EmulatorError(str(e)) from None


def checked_assets(assets: Dict[str, Path]) -> Dict[str, Path]:
    """Refuses a cached kernel or initramfs that another user could have written (it would run as the device)."""
    for path in assets.values():
        try:
            check_private(path)
        except CacheError as e:
            raise EmulatorError(f"{e}; the emulator's assets are rebuilt when missing") from None
    return assets


def _host_mirror() -> str:
    """The Debian archive URI this host's apt uses (so that nothing here names a mirror of its own)."""
    candidates: List[str] = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not path.is_file() or path.name.endswith(("disabled-by-farm", ".save")):
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for block in text.split("\n\n"):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", block, re.M))
                if "bookworm" in fields.get("Suites", "").split() and "URIs" in fields:
                    candidates += fields["URIs"].split()
        else:
            for line in text.splitlines():
                m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if m:
                    candidates.append(m.group(1))
    for uri in candidates:
        if "security" not in uri:
            return uri.rstrip("/")
    raise EmulatorError("no Debian bookworm mirror found in /etc/apt: the emulator needs one to fetch arm64 packages")


class AptRoot:
    """A private apt configuration for arm64 packages; never touches the host's dpkg database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "apt.conf"

    def setup(self) -> None:
        mirror = _host_mirror()
        for d in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d", "var/lib/apt/lists/partial",
                  "var/cache/apt/archives/partial", "var/lib/dpkg"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "var/lib/dpkg/status").touch()
        key = "/usr/share/keyrings/debian-archive-keyring.gpg"
        (self.root / "etc/apt/sources.list").write_text(
            f"deb [arch=arm64 signed-by={key}] {mirror} bookworm main\n"
            f"deb [arch=arm64 signed-by={key}] {mirror} bookworm-backports main\n")
        self.conf.write_text(
            f'Dir "{self.root}/";\nDir::State::status "{self.root}/var/lib/dpkg/status";\n'
            'APT::Architecture "arm64";\nAPT::Architectures { "arm64"; };\n'
            f'Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d/";\n')

    def run(self, *args: str, cwd: Optional[Path] = None) -> str:
        env = dict(os.environ, APT_CONFIG=str(self.conf), DEBIAN_FRONTEND="noninteractive")
        p = subprocess.run(["apt-get", *args] if args[0] != "apt-cache" else list(args), capture_output=True,
                           text=True, env=env, cwd=cwd)
        if p.returncode != 0:
            raise EmulatorError(f"apt ({' '.join(args)}) failed: {p.stderr.strip()[-800:]}")
        return p.stdout

    def update(self) -> None:
        self.run("update")

    def newest(self, pattern: str) -> str:
        names = self.run("apt-cache", "pkgnames", "linux-image-").split()
        matches = [n for n in names if re.match(pattern, n)]
        if not matches:
            raise EmulatorError(f"no arm64 package matches {pattern} in the archive")
        return sorted(matches, key=lambda n: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", n)])[-1]

    def download(self, packages: List[str], into: Path) -> List[Path]:
        into.mkdir(parents=True, exist_ok=True)
        self.run("download", *packages, cwd=into)
        return sorted(into.glob("*.deb"))


def _extract(deb: Path, into: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)


def _cpio_newc(root: Path) -> bytes:
    """A newc cpio archive of `root` (what the kernel unpacks as an initramfs)."""
    out = io.BytesIO()
    ino = 1

    def entry(name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        nonlocal ino
        hdr = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0,
                                                        len(name) + 1, 0))
        out.write(hdr.encode() + name.encode() + b"\0")
        out.write(b"\0" * ((4 - out.tell() % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - out.tell() % 4) % 4))
        ino += 1

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            entry(rel, stat.S_IFDIR | 0o755, nlink=2)
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            name = os.path.normpath(os.path.join(rel, f))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                entry(name, stat.S_IFLNK | 0o777, os.readlink(full).encode())
            else:
                with open(full, "rb") as fh:
                    entry(name, stat.S_IFREG | (st.st_mode & 0o777), fh.read())
    entry("TRAILER!!!", 0)
    return out.getvalue()


def build_assets(kernel: str = "6.12", page_size: str = "4k", log: Callable[[str], object] = print) -> Dict[str, Path]:
    """Builds (once) the kernel Image and initramfs for this kernel and page size; returns their paths."""
    key = (kernel, page_size)
    if key not in KERNELS:
        raise EmulatorError(f"no emulated kernel {kernel} with {page_size} pages "
                            "(choose 6.12 with 4k or 16k, or 6.1 with 4k)")
    target = cache_dir() / f"{kernel}-{page_size}"
    image, initrd = target / "Image", target / "initrd.cpio.gz"
    if image.exists() and initrd.exists():
        return checked_assets({"kernel": image, "initrd": initrd})
    if not shutil.which("dpkg-deb"):
        raise EmulatorError("dpkg-deb is needed to unpack the arm64 packages")
    apt = AptRoot(cache_dir() / "apt-arm64")
    log("fetching arm64 package lists (private apt root)")
    apt.setup()
    apt.update()
    suite, pattern = KERNELS[key]
    kpkg = apt.newest(pattern)
    work = target / "work"
    shutil.rmtree(work, ignore_errors=True)
    debs = work / "debs"
    log(f"downloading {kpkg}, busybox-static and adbd")
    apt.download([kpkg], debs / "kernel")
    # adbd comes from bookworm-backports and needs the android-* libraries of the same suite.
    user = [p + "/bookworm-backports" if p == "adbd" or p.startswith("android-") else p for p in ADBD_PACKAGES]
    apt.download(["busybox-static"] + user, debs / "user")
    kroot = work / "kernel"
    _extract(next((debs / "kernel").glob("*.deb")), kroot)
    vmlinuz = sorted((kroot / "boot").glob("vmlinuz-*"))[0]
    raw = vmlinuz.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rootfs = work / "rootfs"
    for deb in sorted((debs / "user").glob("*.deb")):
        _extract(deb, rootfs)
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "data", "etc", "lib/modules", "usr/bin", "usr/sbin"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(rootfs / "bin/busybox", rootfs / "bin/busybox.tmp")
    os.replace(rootfs / "bin/busybox.tmp", rootfs / "bin/busybox")
    (rootfs / "bin/sh").unlink(missing_ok=True)
    os.symlink("busybox", rootfs / "bin/sh")
    # /lib -> usr/lib merge as Debian does, so the dynamic loader and libraries are found.
    for lib in ("lib", "lib64"):
        usr = rootfs / "usr" / lib
        if usr.is_dir():
            for item in usr.iterdir():
                dest = rootfs / lib / item.name
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.path.relpath(item, dest.parent), dest)
    modules = _module_closure(kroot, NET_MODULES)
    for name, path in modules:
        data = path.read_bytes()
        if path.suffix == ".xz":
            data = lzma.decompress(data)
        (rootfs / "lib/modules" / f"{name}.ko").write_bytes(data)
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/lintian"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
    label = f"Linux {kernel} arm64, {page_size} pages (qemu)"
    (rootfs / "init").write_text(INIT.format(modules=" ".join(n for n, _ in modules), label=label))
    (rootfs / "init").chmod(0o755)
    private_dir(target)
    tmp_image, tmp_initrd = target / "Image.tmp", target / "initrd.tmp"
    tmp_image.write_bytes(raw)
    tmp_initrd.write_bytes(gzip.compress(_cpio_newc(rootfs), 6))
    os.replace(tmp_image, image)
    os.replace(tmp_initrd, initrd)
    (target / "info.json").write_text(json.dumps({"package": kpkg, "kernel": kernel, "page_size": page_size}))
    shutil.rmtree(work, ignore_errors=True)
    return checked_assets({"kernel": image, "initrd": initrd})


def _module_closure(kroot: Path, wanted: List[str]) -> List[Tuple[str, Path]]:
    """[(name, path)] of the wanted kernel modules and their dependencies (read from each module's .modinfo),
    dependencies first; modules built into the kernel are absent from the tree and skipped."""
    index = {}
    found = list(kroot.glob("lib/modules/*/kernel/**/*.ko*")) + list(kroot.glob("usr/lib/modules/*/kernel/**/*.ko*"))
    for path in found:
        name = path.name.split(".ko")[0].replace("-", "_")
        index[name] = path
    order: List[Tuple[str, Path]] = []
    seen = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen or name not in index:
            return
        seen.add(name)
        data = index[name].read_bytes()
        if index[name].suffix == ".xz":
            data = lzma.decompress(data)
        m = re.search(rb"depends=([^\0]*)\0", data)
        for dep in (m.group(1).decode().split(",") if m and m.group(1) else []):
            visit(dep)
        order.append((name, index[name]))

    for w in wanted:
        visit(w)
    return order


_PROCESSES: Dict[int, subprocess.Popen[bytes]] = {}  # qemu children started by this process, reaped by stop()


def _state_file() -> Path:
    return cache_dir() / "running.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(kernel: str = "6.12", page_size: str = "4k", port: Optional[int] = None, memory_mb: int = 1024,
          timeout: float = 120.0, log: Callable[[str], object] = print) -> Dict[str, Any]:
    """Boots the emulated device and waits until its adbd answers on 127.0.0.1:port. Returns its state."""
    qemu = shutil.which("qemu-system-aarch64")
    if not qemu:
        raise EmulatorError("qemu-system-aarch64 not found: apt-get install qemu-system-arm")
    assets = build_assets(kernel, page_size, log=log)
    port = port or _free_port()
    state_dir = private_dir(cache_dir() / f"run-{port}")
    console = state_dir / "console.log"
    cmd = [qemu, "-M", "virt", "-cpu", "max", "-smp", "2", "-m", str(memory_mb), "-nographic", "-no-reboot",
           "-kernel", str(assets["kernel"]), "-initrd", str(assets["initrd"]),
           "-append", "console=ttyAMA0 panic=-1 quiet",
           "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:5555",
           "-device", "virtio-net-pci,netdev=n0,romfile="]
    with open(console, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    state: Dict[str, Any] = {"pid": proc.pid, "port": port, "kernel": kernel, "page_size": page_size,
                             "console": str(console), "serial": f"127.0.0.1:{port}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorError(f"qemu exited ({proc.returncode}); "
                                f"console: {console.read_text(errors='replace')[-2000:]}")
        if _adb_answers(port):
            _PROCESSES[port] = proc
            runs = _load_states()
            runs[str(port)] = state
            _state_file().write_text(json.dumps(runs))
            return state
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise EmulatorError(f"the emulated device's adbd did not answer within {timeout:.0f} s; console: "
                        f"{console.read_text(errors='replace')[-2000:]}")


def _adb_answers(port: int) -> bool:
    from adb_shell.adb_device import AdbDeviceTcp

    dev = AdbDeviceTcp("127.0.0.1", port, default_transport_timeout_s=2.0)
    try:
        dev.connect(rsa_keys=None, auth_timeout_s=2.0, read_timeout_s=2.0)
        return True
    except Exception:
        return False
    finally:
        dev.close()


def _load_states() -> Dict[str, Any]:
    try:
        states: Dict[str, Any] = json.loads(_state_file().read_text())
        return states
    except (OSError, ValueError):
        return {}


def status() -> List[Dict[str, Any]]:
    out = []
    for st in _load_states().values():
        alive = True
        try:
            os.kill(st["pid"], 0)
        except OSError:
            alive = False
        out.append({**st, "alive": alive})
    return out


def stop(port: Optional[int] = None) -> int:
    runs = _load_states()
    stopped = 0
    for key in list(runs):
        if port is not None and int(key) != port:
            continue
        try:
            os.killpg(runs[key]["pid"], signal.SIGTERM)
            stopped += 1
        except OSError:
            pass
        proc = _PROCESSES.pop(int(key), None)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        del runs[key]
        shutil.rmtree(cache_dir() / f"run-{int(key)}", ignore_errors=True)  # its console log goes with it
    if _state_file().parent.exists():
        _state_file().write_text(json.dumps(runs))
    return stopped
