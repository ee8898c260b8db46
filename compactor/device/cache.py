"""Private caches for what the tool executes or pushes to devices (cross-built runners, emulator kernels and
initramfs): every folder is created 0700, and a cached file is used only if this user owns it and nobody else can
write it or any folder between it and the cache home — whoever can write there runs code on a phone or in qemu."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class CacheError(RuntimeError):
    """A cached executable or folder that others could have written; the message names it and the remedy."""


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/compactor`` (default ``~/.cache/compactor``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compactor"


def private_dir(path: Path) -> Path:
    """Creates ``path`` and its missing parents with mode 0700, then checks it with :func:`check_private`."""
    path = Path(path)
    old = os.umask(0o077)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    finally:
        os.umask(old)
    check_private(path)
    return path


def check_private(path: Path) -> None:
    """Raises CacheError unless ``path`` and every folder above it up to the cache home's parent are owned by this
    user (or root) and writable by nobody else."""
    top = cache_home().resolve().parent
    p = Path(path).resolve()
    uid = os.geteuid()
    while True:
        st = p.lstat()
        owner_ok = st.st_uid == uid or (st.st_uid == 0 and p != Path(path).resolve())
        if not owner_ok:
            raise CacheError(f"refusing {p}: owned by uid {st.st_uid}, not by this user (uid {uid}); remove it")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (p.is_dir() and st.st_mode & stat.S_ISVTX):
            raise CacheError(f"refusing {p}: others can write it (mode {stat.S_IMODE(st.st_mode):o}); run "
                             f"`chmod go-w {p}` or remove it")
        if p == top or p.parent == p or top not in p.parents:
            return
        p = p.parent
