"""Mutators that behave like an app's threads: they pace themselves (think busy or asleep, UI frames), allocate
real objects in TLABs above the post-compact end, and every run reports what the app saw (mutator_view)."""

from __future__ import annotations

import math
import os
import statistics

import pytest

import compactor
from compactor import HeapCorruption

from conftest import features, has_tlb_row, require

# The mutator profiles every strategy and fault mode must collect correctly with.
PROFILES = {
    "stress": {},
    "busy": {"think_ns": 20_000, "think": "busy"},
    "sleep": {"think_ns": 20_000, "think": "sleep"},
    "ui": {"frame_hz": 240, "frame_duty": 0.5},
    "alloc": {"think_ns": 20_000, "alloc_rate": 400_000_000},
}
CONCURRENT = ["copy", "move", "move-alloc", "hybrid"]
MOVE_FAMILY = {"move", "move-alloc"}


@pytest.fixture(scope="module")
def heap8():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="8MiB", live_fraction=0.5, seed=5))
    return heap, compactor.plan(heap)


def run(heap, plan, strategy, **opts):
    return compactor.collect(heap, strategy, plan=plan, mutators=opts.pop("mutators", 1), **opts)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("faults", ["sigbus", "thread"])
@pytest.mark.parametrize("strategy", CONCURRENT)
def test_every_strategy_fault_mode_and_profile_collects_what_the_profile_did(heap8, strategy, faults, profile):
    """Each profile does its own thing (frames, allocations by the strategy's fresh-page method), and verifies."""
    if strategy in MOVE_FAMILY | {"hybrid"}:
        require("move" in features(), "the kernel lacks UFFDIO_MOVE")
    heap, plan = heap8
    r = run(heap, plan, strategy, faults=faults, **PROFILES[profile])
    c, view = r.counters, r.mutator_view
    assert c["mutator_accesses"] > 0 and c["pre_pause_accesses"] > 0
    assert (c["frames"] > 0) == (profile == "ui")
    fresh = view["fresh_pages"]
    if profile != "alloc":
        assert c["new_objects"] == 0 and sum(fresh.values()) == 0
        return
    assert c["new_objects"] > 0 and r.raw["new_objects_verified"] == c["new_objects"]
    assert sum(fresh.values()) > 0 and c["tlabs"] > 0
    if strategy == "copy":
        assert fresh["zero_and_move"] == 0 and fresh["zeropage"] > 0


@pytest.mark.parametrize("strategy", sorted(MOVE_FAMILY))
def test_the_move_family_maps_fresh_pages_by_zero_and_move(strategy):
    """While the compaction runs, a fresh page is a zeroed page MOVEd in (ART's ZeroAndMoveFreePage); after the
    last to-space page is mapped the recycle pool is closed, so a heap large enough to outlast the first
    allocations is used (and three tries)."""
    require("move" in features(), "the kernel lacks UFFDIO_MOVE")
    heap = compactor.Heap.generate(compactor.HeapSpec(size="32MiB", live_fraction=0.5, seed=6))
    plan = compactor.plan(heap)
    moved = [run(heap, plan, strategy, seed=s, alloc_rate=2_000_000_000).mutator_view["fresh_pages"]["zero_and_move"]
             for s in (1, 2, 3)]
    assert max(moved) > 0, moved


def test_a_corrupted_new_object_is_named_by_the_verifier(heap8):
    """The test hook flips a payload word of mutator 0's first allocation: the verifier names that object."""
    heap, plan = heap8
    named = r"new object 0x8000000000000000 \(allocation 0 of mutator 0\).*payload word 0"
    with pytest.raises(HeapCorruption, match=named):
        run(heap, plan, "copy", alloc_rate=400_000_000, corrupt_new_object=True)
    assert run(heap, plan, "copy", alloc_rate=400_000_000).raw["new_objects_verified"] > 0


def test_allocation_that_runs_out_of_free_space_is_refused_and_still_verifies():
    """A tiny heap, nearly full, and a huge rate with big TLABs: allocations are refused, the rest verifies."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", live_fraction=0.9, seed=2))
    plan = compactor.plan(heap)
    r = run(heap, plan, "copy", mutators=2, alloc_rate=10 ** 12, tlab=1 << 16, think_ns=50_000)
    assert r.counters["alloc_failures"] > 0
    assert r.counters["allocated_bytes"] <= heap.heap_size - plan.num_to_pages * compactor.uffd.PAGE_SIZE


def test_the_mutator_view_is_recomputed_from_the_raw_counters(heap8):
    """Every derived field of mutator_view follows from the counters, pages, samples and times of the run."""
    heap, plan = heap8
    r = run(heap, plan, "copy", mutators=2, **PROFILES["alloc"])
    v, c, p, raw = r.mutator_view, r.counters, r.pages, r.raw
    assert v["pages_resolved_share"] == pytest.approx(p["by_mutators"] / p["total"])
    assert v["fault_time_ms"] == pytest.approx(c["fault_ns"] / 1e6)
    samples = sorted(r.latency_samples_ns.tolist())
    assert v["faults"] == len(samples) and c["fault_ns"] == sum(samples)  # max_samples is far above the count
    assert v["longest_stall_us"] == pytest.approx(samples[-1] / 1e3)
    assert v["fault_p50_us"] == pytest.approx(samples[math.ceil(0.5 * len(samples)) - 1] / 1e3)
    before = c["pre_pause_accesses"] / c["pre_pause_ns"] * 1e9
    during = c["phase_accesses"] / c["phase_ns"] * 1e9
    assert v["accesses_per_s_before"] == pytest.approx(before) and v["accesses_per_s_during"] == pytest.approx(during)
    assert v["rate_during_vs_before"] == pytest.approx(during / before)
    assert v["app_slow_path_ms"] == pytest.approx(raw["app_slow_path_s"] * 1e3)
    assert 0 < raw["app_slow_path_s"] <= raw["concurrent_s"]
    # Each mutator's window is the slow-path window, measured from the same two instants.
    assert c["phase_ns"] == pytest.approx(2 * raw["app_slow_path_s"] * 1e9, rel=1e-6)
    assert v["fresh_pages"] == {"zeropage": p["zeropage"], "zero_and_move": p["fresh_zero_and_move"],
                                "copy": p["fresh_copy"]}
    assert v["new_objects"] == c["new_objects"] and v["allocated_bytes"] == c["allocated_bytes"]
    assert v["fresh_install_ns_per_page"] == pytest.approx(c["fresh_install_ns"] / sum(v["fresh_pages"].values()))


def test_think_time_slows_the_access_rate_and_frames_follow_the_refresh_rate(heap8):
    """Before the pause, 1 ms asleep between chains cuts the access rate far below the stress loop's; a 100 Hz
    UI mutator counts about one frame per 10 ms of the pre-pause window and phase."""
    heap, plan = heap8
    stress = run(heap, plan, "copy", pre_pause_ms=20).mutator_view["accesses_per_s_before"]
    paced = run(heap, plan, "copy", pre_pause_ms=20, think_ns=1_000_000).mutator_view["accesses_per_s_before"]
    assert paced * 20 < stress, (paced, stress)
    ui = run(heap, plan, "copy", pre_pause_ms=50, frame_hz=100, frame_duty=0.2)
    assert 3 <= ui.counters["frames"] <= 5 + (ui.raw["concurrent_s"] + ui.raw["finish_s"]) * 100 + 2


def tlb_per_move_ioctl(heap, plan, think):
    ratios = []
    for seed in (1, 2, 3):
        r = compactor.collect(heap, "move", mutators=1, plan=plan, seed=seed, batch=1, gc_cpu=0, mutator_cpus=[1],
                              think_ns=200_000, think=think)
        ratios.append(r.raw["interrupts"]["tlb_shootdowns"] / max(1, r.counters["ioctl_move"]))
    return statistics.median(ratios)


def test_a_sleeping_mutator_causes_fewer_shootdowns_per_move_than_a_busy_one():
    """A mutator computing on the other CPU gets a TLB-shootdown IPI per MOVE ioctl; one asleep between chains
    (its CPU idle) gets only the first MOVEs' after each sleep (x86: a remote flush is an IPI; arm64 broadcasts
    and has no row)."""
    require(has_tlb_row(), "this kernel's /proc/interrupts has no TLB row (arm64 broadcasts TLB invalidations)")
    require(len(os.sched_getaffinity(0)) >= 2, "needs two CPUs: one for the GC thread, one for the mutator")
    require("move" in features(), "the kernel lacks UFFDIO_MOVE")
    heap = compactor.Heap.generate(compactor.HeapSpec(size="16MiB", live_fraction=0.5, seed=11))
    plan = compactor.plan(heap)
    # In a KVM guest with PV remote TLB flush a vCPU the host has preempted gets no IPI (its flush waits for its
    # next entry), so a busy host can hide every shootdown for a while: best of three attempts.
    tries = []
    for _ in range(3):
        busy, asleep = tlb_per_move_ioctl(heap, plan, "busy"), tlb_per_move_ioctl(heap, plan, "sleep")
        tries.append((busy, asleep))
        if busy > 0.5 and busy > 3 * asleep:
            return
    pytest.fail(f"(busy, asleep) shootdowns per MOVE ioctl in three attempts: {tries}")
