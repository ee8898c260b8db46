"""MOVE under load: what the TLB shootdowns cost, CPU placement, waiting, and the hybrid policy. Counts are
compared as ratios inside one test (the TLB row of /proc/interrupts is system-wide and machines are shared)."""

from __future__ import annotations

import os
import statistics

import pytest

import compactor
from compactor.bench.schema import SWEEP_SCHEMA_ID

from conftest import has_tlb_row, require


@pytest.fixture(scope="module")
def heap16():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="16MiB", live_fraction=0.5, seed=11))
    return heap, compactor.plan(heap)


def two_cpus():
    require(len(os.sched_getaffinity(0)) >= 2, "needs two CPUs: one for the GC thread, one for a mutator")


def tlb(heap, plan, strategy, mutators, reps=3, **opts):
    """Median TLB shootdowns of `reps` collections (each verified)."""
    counts = []
    for i in range(reps):
        r = compactor.collect(heap, strategy, mutators=mutators, plan=plan, seed=i + 1, **opts)
        assert r.verified
        counts.append(r.raw["interrupts"]["tlb_shootdowns"])
    return statistics.median(counts)


def test_every_collection_reports_interrupts(heap16):
    heap, plan = heap16
    r = compactor.collect(heap, "copy", plan=plan)
    irq = r.raw["interrupts"]
    assert set(irq) == {"tlb_shootdowns", "function_call"}
    if has_tlb_row():
        assert isinstance(irq["tlb_shootdowns"], int) and irq["tlb_shootdowns"] >= 0
    else:  # arm64 and others: no such IPIs to count
        assert irq["tlb_shootdowns"] is None
    c = r.counters
    assert {"major_faults", "gc_voluntary_switches", "gc_involuntary_switches"} <= set(c)


def test_hybrid_avoids_the_shootdowns_move_pays_under_load(heap16, need_move):
    """Fixed hybrid (move_min_run=64: mutators COPY, the GC MOVEs only long runs) under two stress mutators sends
    at most a tenth of MOVE's TLB shootdowns."""
    require(has_tlb_row(), "this kernel's /proc/interrupts has no TLB row (arm64 broadcasts TLB invalidations)")
    two_cpus()
    heap, plan = heap16
    tries = []
    for _ in range(3):  # best of three: a KVM guest's PV TLB flush sends no IPI to a vCPU the host preempted
        move = tlb(heap, plan, "move", 2, batch=64)
        hybrid = tlb(heap, plan, "hybrid", 2, batch=64, move_min_run=64)
        tries.append((move, hybrid))
        if move > 100 and hybrid * 10 <= move:
            return
    pytest.fail(f"(move, hybrid) TLB shootdowns in three attempts: {tries}")


def test_hybrid_moves_long_runs_when_alone_and_mutators_copy(heap16, need_move):
    """Fixed hybrid: alone, the GC MOVEs in long runs; under load, mutators COPY and every MOVE is a run of
    >= move_min_run pages (counted in this machine's pages)."""
    heap, plan = heap16
    ps = compactor.uffd.PAGE_SIZE
    alone = compactor.collect(heap, "hybrid", mutators=0, plan=plan, batch=64)
    assert alone.pages["move_batched"] > plan.num_to_pages // 2
    min_run = 64  # the fixed policy (move_min_run="auto" is priced: tests/test_move_prices.py)
    loaded = compactor.collect(heap, "hybrid", mutators=2, plan=plan, batch=64, move_min_run=min_run)
    # No single-page MOVE ever: mutators install with COPY, and the GC MOVEs only runs of >= move_min_run pages.
    assert loaded.pages["move"] == 0
    assert loaded.pages["by_mutators"] > 0 and loaded.pages["copy"] >= loaded.pages["by_mutators"]
    moved_pages = loaded.counters["bytes_moved"] // ps
    assert moved_pages == loaded.pages["move_batched"]
    # What the GC installed itself was a run it MOVEd whole or a run too short to MOVE, which it COPYd.
    assert loaded.pages["copy_short_run"] > 0
    assert moved_pages + loaded.pages["copy"] + loaded.pages["copy_short_run"] \
        + loaded.pages["copy_fallback_pool_empty"] == loaded.pages["total"]
    assert moved_pages >= min_run * loaded.counters["ioctl_move"], (moved_pages, loaded.counters["ioctl_move"])


@pytest.mark.parametrize("backoff", ["art", "futex"])
@pytest.mark.parametrize("faults", ["sigbus", "thread"])
def test_both_backoffs_verify(heap16, backoff, faults):
    """Either backoff collects with faulting mutators; ART's spinning backoff never waits on a futex."""
    heap, plan = heap16
    r = compactor.collect(heap, "copy", faults=faults, mutators=2, plan=plan, backoff=backoff)
    assert r.counters["faults_handled"] > 0
    if backoff == "art":
        assert r.counters["futex_waits"] == 0


def test_pinned_threads_verify_and_report_what_they_needed(heap16):
    two_cpus()
    heap, plan = heap16
    r = compactor.collect(heap, "copy", mutators=3, plan=plan, gc_cpu=0, mutator_cpus=[1])
    assert r.verified
    assert r.raw["threads_needed"] == 4 and r.raw["cpus"] == len(os.sched_getaffinity(0))


def test_sweep_quick_grid_writes_json_csv_and_heatmap(tmp_path):
    from compactor.bench.sweep import main

    out = tmp_path / "sweep"
    rc = main(["--heap", "4MiB", "--live", "0.5", "--mutators", "0,1", "--batch", "1,64", "--strategies",
               "move,hybrid", "--repeat", "1", "--quiet", "--json", f"{out}.json", "--csv", f"{out}.csv",
               "--plot", f"{out}.png"])
    assert rc == 0
    import json
    from pathlib import Path

    rep = json.loads(Path(f"{out}.json").read_text())
    assert rep["schema"] == SWEEP_SCHEMA_ID
    assert len(rep["cells"]) == 1 * 2 * 2 * 3  # copy is always added: every ratio is against it
    assert all(c["verified"] for c in rep["cells"])
    assert rep["hybrid_vs_best"]["worst_cell"]["ratio"] > 0
    assert Path(f"{out}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(Path(f"{out}.csv").read_text().splitlines()) == 1 + 12
