"""The soak (benchmarks/soak.py, compactor/bench/soak.py): a short one in the suite, the seeded configurations, and
the leak verdict shown able to fail."""

from __future__ import annotations

import collections
import errno
import json
import pathlib
import subprocess
import sys

import pytest

import compactor
from compactor import profiles, uffd
from compactor import swap as swap_mod
from compactor.bench import soak
from compactor.collector import STRATEGIES

from conftest import run_python

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
SHORT = 500  # about 15 s here (35-40 collections per second)


def run_soak(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """benchmarks/soak.py ARGS by path in a fresh interpreter from "/" (the installed package)."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd="/")


def test_a_short_soak_verifies_every_collection_and_leaks_no_fd_thread_or_mapping(tmp_path):
    """500 seeded collections in one process: all verify, each drawn error path ends as expected, and fds and
    threads end as they started (mappings and RSS within the stated bounds)."""
    out = tmp_path / "soak.json"
    p = run_soak("--collections", str(SHORT), "--seed", "3", "--json", str(out), "--quiet")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "soak: PASS" in p.stdout and "collections" not in p.stderr
    r = json.loads(out.read_text())
    assert r["schema"] == soak.SCHEMA_ID and r["pass"] and r["failure"] is None
    assert r["collections"] == SHORT
    move = "move" in uffd.probe()
    drawn = list(soak.draw_configs(3, SHORT, move=move, swap=bool(swap_mod.active_swaps())))
    hooks = collections.Counter(c["expect"] for c in drawn if c["expect"])
    assert r["expected_errors"] == {k: hooks.get(k, 0) for k in soak.EXPECTED_RATES}
    assert all(hooks.get(k, 0) > 0 for k in soak.EXPECTED_RATES), hooks  # seed 3 draws every hook
    assert r["outcomes"]["verified"] == SHORT - sum(hooks.values())
    g = r["verdict"]["growth"]
    assert g["fds"] == 0 and g["threads"] == 0 and abs(g["maps"]) <= soak.MAPS_BOUND
    assert g["rss_bytes"] <= r["verdict"]["rss_bound_bytes"]
    assert [s["collections"] for s in r["samples"]] == list(range(0, SHORT + 1, soak.SAMPLE_EVERY))


def test_the_configurations_are_the_same_for_the_same_seed():
    """draw_configs is a function of its arguments: the same seed draws the same sequence, another seed another."""
    a = list(soak.draw_configs(11, 300))
    assert a == list(soak.draw_configs(11, 300))
    assert a != list(soak.draw_configs(12, 300))
    # Swap changes only the swapped share, never the rest of the sequence.
    b = list(soak.draw_configs(11, 300, swap=True))
    assert [{k: v for k, v in c["options"].items() if k != "swapped"} for c in b] == [c["options"] for c in a]
    assert any("swapped" in c["options"] for c in b) and not any("swapped" in c["options"] for c in a)


def test_the_configurations_cover_every_strategy_fault_mode_and_error_path():
    """Within 2000 draws: every strategy, fault mode, mutator count, batch, heap, profile, recoverable errno and
    error-path hook; hooks only where they are sure to fire; no MOVE strategy when the kernel lacks MOVE."""
    drawn = list(soak.draw_configs(1, 2000))
    assert {c["strategy"] for c in drawn} == set(STRATEGIES)
    assert {c["faults"] for c in drawn} == set(soak.FAULTS)
    assert {c["mutators"] for c in drawn} == set(soak.MUTATORS)
    assert {c["options"]["batch"] for c in drawn} == set(soak.BATCHES)
    assert {c["heap"] for c in drawn} == set(range(len(soak.HEAP_SHAPES)))
    assert {c["profile"] for c in drawn if c["profile"]} == set(profiles.PROFILES)
    assert {c["options"].get("access") for c in drawn if c["mutators"]} == set(soak.ACCESS)
    assert all(c["options"]["pre_pause_ms"] <= 2 for c in drawn)
    recoverable = {c["options"]["inject_errno"] for c in drawn if c["options"].get("inject_errno", 0) > 0}
    assert recoverable == {errno.EAGAIN, errno.EBUSY, errno.ENOMEM}
    assert {c["expect"] for c in drawn} == {None, *soak.EXPECTED_RATES}
    for c in drawn:
        o = c["options"]
        if c["expect"] in ("double-install", "poison"):
            assert c["mutators"] == 0 and o["batch"] >= 16 and c["strategy"] in ("copy", "move", "move-alloc")
            assert o["inject_errno"] == (-1 if c["expect"] == "double-install" else -2)
            assert c["strategy"] != "move" or o["batch"] in soak.MOVE_HOOK_BATCHES
        elif c["expect"] == "watchdog":
            assert c["strategy"] != "stw" and o["stall_seconds"] > 100 * o["watchdog"]
        if o.get("inject_errno") == errno.EBUSY:  # the core injects EBUSY into MOVE only
            assert c["strategy"] in soak.MOVE_STRATEGIES
    no_move = list(soak.draw_configs(1, 2000, move=False))
    assert {c["strategy"] for c in no_move} == {"stw", "copy"}
    assert {c["expect"] for c in no_move} == {None, *soak.EXPECTED_RATES}


PLANTED_LEAKS = """
import mmap, os, tempfile, threading
from compactor.bench import soak

start = soak.resources()
assert soak.verdict(start, soak.resources(), 100)["pass"]
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
pipes = [tuple(open(fd, mode) for fd, mode in zip(os.pipe(), ("rb", "wb"))) for _ in range(2)]
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "pages")
    with open(path, "wb") as f:
        f.write(b"\\1" * (32 * mmap.PAGESIZE))
    with open(path, "r+b") as f:  # every other page: the mappings cannot merge into one line
        maps = [mmap.mmap(f.fileno(), mmap.PAGESIZE, offset=2 * i * mmap.PAGESIZE) for i in range(12)]
    ballast = bytearray(b"\\1" * (16 << 20))
    v = soak.verdict(start, soak.resources(), 100)
    assert not v["pass"]
    text = "\\n".join(v["problems"])
    assert "open fds" in text and "threads" in text and "mappings" in text and "RSS grew" in text, text
    assert v["growth"]["threads"] == 1 and v["growth"]["fds"] >= 4 and v["growth"]["maps"] >= 12, v
    del ballast
    for m in maps:
        m.close()
for r, w in pipes:
    r.close()
    w.close()
stop.set()
thread.join()
after = soak.verdict(start, soak.resources(), 100)
assert after["pass"], after
print("ok")
"""


def test_the_leak_verdict_names_a_planted_fd_thread_mapping_and_rss_leak():
    """Fds, a thread, file mappings and touched memory planted between two samples of a fresh process (no other
    test's threads coming and going beside them) are each reported; once they are gone the verdict passes again."""
    p = run_python(PLANTED_LEAKS, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stdout + p.stderr


def test_a_collection_that_fails_or_misses_its_expected_error_is_a_soak_failure():
    """run_one fails an unexpected HeapCorruption (a corrupted new object) and an error path that did not come
    (no stall, so no WatchdogTimeout), naming the configuration; a drawn hook passes as its expected error."""
    heaps = [compactor.Heap.generate(compactor.HeapSpec(**soak.HEAP_SHAPES[3]))]
    plans = [compactor.plan(heaps[0])]
    base = {"index": 7, "heap": 0, "strategy": "copy", "faults": "sigbus", "mutators": 0, "profile": None,
            "plan": True, "expect": None, "options": {"pre_pause_ms": 0}}
    assert soak.run_one(base, heaps, plans) == "verified"
    corrupt = {**base, "mutators": 1, "options": {"alloc_rate": 400_000_000, "corrupt_new_object": True}}
    with pytest.raises(soak.SoakFailure, match=r"HeapCorruption: .*new object.*; #7 heap 0"):
        soak.run_one(corrupt, heaps, plans)
    with pytest.raises(soak.SoakFailure, match="expected watchdog, but the collection ended normally"):
        soak.run_one({**base, "expect": "watchdog"}, heaps, plans)
    stalled = {**base, "expect": "watchdog", "options": {"stall_seconds": soak.STALL_SECONDS,
                                                         "watchdog": soak.STALL_WATCHDOG}}
    assert soak.run_one(stalled, heaps, plans) == "watchdog"


def test_bad_arguments_exit_2_with_a_clear_message_and_no_report(tmp_path):
    """No stop condition, a non-positive count or time, or a --json folder that does not exist: exit 2, the
    problem named, nothing written."""
    out = tmp_path / "r.json"
    for args, message in [([], "give --minutes N or --collections N"),
                          (["--collections", "0"], "--collections must be at least 1"),
                          (["--minutes", "-1"], "--minutes must be positive"),
                          (["--collections", "5", "--seed", "-2"], "--seed must be non-negative"),
                          (["--collections", "5", "--json", str(tmp_path / "no" / "r.json")], "does not exist")]:
        p = run_soak(*args, "--json", str(out)) if "--json" not in args else run_soak(*args)
        assert p.returncode == 2 and message in p.stderr, (args, p.stderr)
        assert p.stdout == "" and not out.exists()
