"""The device path end to end on an emulated arm64 device (Debian's arm64 kernels under qemu, adbd inside):
the static aarch64 runner is cross-built, pushed and run there; quoting, exit codes and errors over ADB."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import require

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def arm64_runner(tmp_path_factory):
    require(shutil.which("aarch64-linux-gnu-g++") is not None,
            "the aarch64 cross compiler is missing (apt-get install g++-aarch64-linux-gnu)")
    out = tmp_path_factory.mktemp("arm64")
    p = subprocess.run(["bash", str(ROOT / "device" / "build-runner.sh"), str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    runner = out / "compactor-runner"
    assert b"\x7fELF" == runner.read_bytes()[:4] and runner.read_bytes()[18] == 0xB7  # EM_AARCH64
    return runner


def _start(kernel, page_size):
    require(shutil.which("qemu-system-aarch64") is not None,
            "qemu-system-aarch64 is missing (apt-get install qemu-system-arm)")
    from compactor.device import emulator
    state = emulator.start(kernel, page_size, log=lambda _m: None)
    return emulator, state


def bench(serial, runner, *args, check=True):
    env = dict(os.environ, COMPACTOR_DEVICE_RUNNER=str(runner))
    p = subprocess.run([sys.executable, "-m", "compactor.bench", "--device", serial, *args], capture_output=True,
                       text=True, env=env, timeout=1500, cwd="/")
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def test_quick_bench_runs_on_the_emulated_4k_device(device_4k, arm64_runner):
    # The scenarios assert verification and labels, not speed: a small heap, one repetition.
    p = bench(device_4k, arm64_runner, "--quick", "--heap", "8MiB", "--repeat", "1", "--mutators", "0,2",
              "--json", "-", "--quiet")
    report = json.loads(p.stdout)
    env = report["environment"]
    assert env["arch"] == "aarch64" and env["emulated"] is True and env["where"] == "device"
    assert env["move"] is True and env["page_size"] == 4096
    runs = {r["key"]: r for r in report["runs"]}
    assert runs["copy/sigbus/0"]["verified"] and runs["move/sigbus/0"]["verified"]
    assert all(r["verified"] for r in runs.values())
    assert report["config"]["executor"] == "device"
    assert all(c["verdict"].startswith("emulated: not a performance measurement") for c in report["claims"])


def test_text_report_labels_emulated_timings(device_4k, arm64_runner):
    p = bench(device_4k, arm64_runner, "--heap", "8MiB", "--repeat", "1", "--strategies", "copy", "--mutators", "0",
              "--quiet")
    assert "emulated: not a performance measurement" in p.stdout


def test_plan_files_are_removed_and_the_runner_is_not_pushed_twice(device_4k, arm64_runner):
    from compactor.device import Device
    from compactor.device.adb import REMOTE_DIR
    bench(device_4k, arm64_runner, "--heap", "8MiB", "--repeat", "1", "--strategies", "copy", "--mutators", "0",
          "--quiet")
    with Device(device_4k) as d:
        listing = d.run(["ls", REMOTE_DIR], check=True).stdout.split()
        assert "heap.plan" not in listing and "compactor-runner" in listing
        assert d.push(arm64_runner, f"{REMOTE_DIR}/compactor-runner", mode=0o100700) is False
        # the remote folder and the runner are private to the user the tool runs as there
        modes = d.run(["stat", "-c", "%a", REMOTE_DIR, f"{REMOTE_DIR}/compactor-runner"], check=True).stdout.split()
        assert modes == ["700", "700"]


def test_a_runner_replaced_on_the_device_is_refused(device_4k, arm64_runner, tmp_path):
    from compactor.device.adb import REMOTE_DIR, DeviceError
    from compactor.device.session import DeviceSession

    s = DeviceSession(device_4k, runner=arm64_runner)
    try:
        s.device.run(["sh", "-c", f"echo tampered >> {REMOTE_DIR}/compactor-runner"], check=True)
        with pytest.raises(DeviceError, match="not the runner this tool pushed"):
            s.measure_floor(16, 1)
    finally:
        s.close()


def test_remote_commands_are_quoted_and_report_exit_status_and_stderr(device_4k, tmp_path):
    from compactor.device import Device
    from compactor.device.adb import REMOTE_DIR
    nasty = "a b;$(echo no) 'q' \"dq\" `x` & | > *"
    with Device(device_4k) as d:
        r = d.run(["sh", "-c", 'printf "%s" "$1"; echo oops >&2; exit 7', "sh", nasty])
        assert (r.status, r.stdout, r.stderr.strip()) == (7, nasty, "oops")
        local = tmp_path / "f.bin"
        local.write_bytes(os.urandom(5000))
        remote = f"{REMOTE_DIR}/dir with space/we ird $name;'q'.bin"
        assert d.push(local, remote) is True
        import hashlib
        assert d.sha256(remote) == hashlib.sha256(local.read_bytes()).hexdigest()
        d.remove(remote)
        assert d.sha256(remote) is None


def test_heap_from_app_on_a_device_without_am_is_a_clear_error(device_4k, arm64_runner):
    p = bench(device_4k, arm64_runner, "--heap-from-app", "com.example.app", "--quick", check=False)
    assert p.returncode == 2 and "has no `am`" in p.stderr and "--heap-from" in p.stderr, p.stderr


def test_unreachable_device_is_a_clear_error():
    p = subprocess.run([sys.executable, "-m", "compactor.bench", "--device", "127.0.0.1:1", "--quick"],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 2 and "unreachable" in p.stderr


def test_missing_serial_names_the_remedy(monkeypatch):
    from compactor.device import Device, DeviceError
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    with pytest.raises(DeviceError, match="ANDROID_SERIAL"):
        Device(None)


def test_16k_page_kernel_plans_with_the_devices_page_size(arm64_runner):
    emulator, state = _start("6.12", "16k")
    try:
        p = bench(state["serial"], arm64_runner, "--heap", "16MiB", "--repeat", "1", "--mutators", "0,2",
                  "--strategies", "copy,move", "--json", "-", "--quiet")
        report = json.loads(p.stdout)
        assert report["environment"]["page_size"] == 16384 and report["config"]["page_size"] == 16384
        assert all(r["verified"] for r in report["runs"])
    finally:
        emulator.stop(state["port"])


def test_61_kernel_reports_move_unsupported_and_copy_verifies(arm64_runner):
    emulator, state = _start("6.1", "4k")
    try:
        p = bench(state["serial"], arm64_runner, "--heap", "8MiB", "--repeat", "1", "--mutators", "0",
                  "--json", "-", "--quiet")
        report = json.loads(p.stdout)
        assert report["environment"]["move"] is False
        runs = {r["key"]: r for r in report["runs"]}
        assert runs["move/sigbus/0"]["status"] == "unsupported"
        assert "unsupported on this kernel" in runs["move/sigbus/0"]["reason"]
        assert runs["copy/sigbus/0"]["verified"]
        assert "COPY is still measured" in p.stderr
    finally:
        emulator.stop(state["port"])
    assert not (emulator.cache_dir() / f"run-{state['port']}").exists()  # stopping leaves nothing behind
