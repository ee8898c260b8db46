"""The modes of what the tool creates, and what it refuses: the ADB key, ADB_VENDOR_KEYS read as adb reads it,
private caches for what is executed or pushed, atomic outputs, bounded untrusted input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from compactor.device import adb
from compactor.device.cache import CacheError, check_private, private_dir


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ANDROID_USER_HOME", raising=False)
    monkeypatch.delenv("ADB_VENDOR_KEYS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(adb, "_warned_keys", set())
    return tmp_path


def test_a_generated_adb_key_is_0600_in_a_0700_folder(home):
    os.umask(0o022)
    key = adb.ensure_user_key()
    assert key == home / ".android" / "adbkey"
    assert mode(key) == 0o600 and mode(key.parent) == 0o700
    assert (home / ".android" / "adbkey.pub").exists()
    assert [p.name for p in key.parent.iterdir() if p.name.startswith(".adbkey-")] == []  # no leftovers
    assert len(adb.load_signers()) == 1


def test_an_existing_key_with_wider_bits_is_used_and_warned_about_once(home, capsys):
    key = adb.ensure_user_key()
    os.chmod(key, 0o644)
    before = key.read_bytes()
    adb.load_signers()
    adb.load_signers()
    err = capsys.readouterr().err
    assert err.count("readable or writable by others") == 1 and "chmod 600" in err
    assert key.read_bytes() == before and mode(key) == 0o644  # used as it is, not rewritten


def test_adb_vendor_keys_are_tried_in_turn_and_never_written(home, monkeypatch):
    from adb_shell.auth.keygen import keygen

    vendor = home / "vendor"
    folder = vendor / "keys"
    folder.mkdir(parents=True)
    keygen(str(vendor / "one"))
    keygen(str(folder / "two.adbkey"))
    (folder / "not-a-key.txt").write_text("ignored")
    monkeypatch.setenv("ADB_VENDOR_KEYS", f"{vendor / 'one'}:{folder}:{home / 'missing'}")
    snapshot = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in vendor.rglob("*") if p.is_file()}
    paths = adb.vendor_key_paths()
    assert paths == [vendor / "one", folder / "two.adbkey"]
    signers = adb.load_signers()
    assert len(signers) == 3  # the user's key first, then both vendor keys
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in vendor.rglob("*") if p.is_file()}
    assert after == snapshot and not (home / "missing").exists()


def test_cache_folders_are_private(home):
    d = private_dir(home / "cache" / "compactor" / "runner-aarch64" / "abc")
    for p in (d, d.parent, d.parent.parent):
        assert mode(p) == 0o700


def test_a_cached_runner_that_others_can_write_is_refused(home):
    from compactor.device.adb import DeviceError
    from compactor.device.runner_build import aarch64_runner, source_root, sources_digest

    root = source_root()
    assert root is not None
    folder = private_dir(home / "cache" / "compactor" / "runner-aarch64" / sources_digest(root))
    runner = folder / "compactor-runner"
    runner.write_bytes(b"\x7fELF planted")
    os.chmod(runner, 0o755)
    os.chmod(folder, 0o777)
    with pytest.raises(DeviceError, match="others can write it"):
        aarch64_runner()
    os.chmod(folder, 0o700)
    os.chmod(runner, 0o777)
    with pytest.raises(DeviceError, match="others can write it"):
        aarch64_runner()
    os.chmod(runner, 0o700)
    assert aarch64_runner() == runner  # private again: used


def test_emulator_assets_that_others_can_write_are_refused(home):
    from compactor.device import emulator

    target = private_dir(emulator.cache_dir() / "6.12-4k")
    for name in ("Image", "initrd.cpio.gz"):
        (target / name).write_bytes(b"x")
        os.chmod(target / name, 0o600)
    assert emulator.build_assets("6.12", "4k")["kernel"] == target / "Image"
    os.chmod(target / "Image", 0o666)
    with pytest.raises(emulator.EmulatorError, match="others can write it"):
        emulator.build_assets("6.12", "4k")


def test_check_private_refuses_a_foreign_owner(home):
    if os.geteuid() != 0:
        pytest.skip("needs root to hand a file to another user")  # CI runs as root
    f = private_dir(home / "cache" / "compactor") / "x"
    f.write_bytes(b"")
    os.chown(f, 65534, 65534)
    with pytest.raises(CacheError, match="owned by uid 65534"):
        check_private(f)


def test_outputs_are_written_whole_with_the_usual_mode(tmp_path):
    from compactor.bench.report import atomic_write

    os.umask(0o022)
    target = tmp_path / "r.json"
    atomic_write(str(target), b"{}")
    assert target.read_bytes() == b"{}" and mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_compare_bounds_and_checks_untrusted_reports(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2, 3]")
    good = tmp_path / "x.json"
    good.write_text(json.dumps({"schema": "nope"}))
    for a in (bad, good):
        p = subprocess.run([sys.executable, "-m", "compactor.bench", "compare", str(a), str(a)], capture_output=True,
                           text=True, timeout=60, cwd="/")
        assert p.returncode == 2 and "error:" in p.stderr, p.stderr
