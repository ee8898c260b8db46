"""MOVE priced from the machine: the decision model over injected prices (pure, no kernel), and the real
measurement of COPY's and MOVE's per-page, per-ioctl and shootdown prices. Times are compared as ratios inside
one test, except the measurement's own budget, whose bound is ten times what it takes on a loaded machine."""

from __future__ import annotations

import json
import math
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compactor
from compactor import _native

from conftest import has_tlb_row, require, run_python

PRICE_KEYS = ("copy_ns_per_page", "copy_ns_per_ioctl", "move_ns_per_page", "move_ns_per_ioctl", "shootdown_ns")
SLEEP_KEYS = ("shootdowns_after_sleep", "shootdowns_after_sleep_timed")
MOVES_PER_SLEEP = 4  # move_prices.cpp kMovesPerSleep: the MOVEs timed early in each of the sleeping sibling's sleeps

# The prices of uffd-kernel-facts.md: one shootdown ~7 µs, MOVE 165 ns and COPY 300 ns per page in runs of 64.
FACTS = {"copy_ns_per_page": 300.0, "copy_ns_per_ioctl": 0.0, "move_ns_per_page": 165.0, "move_ns_per_ioctl": 0.0,
         "shootdown_ns": 7000.0}


def prices(**kw: float) -> dict:
    return {**FACTS, **kw}


def model_says_move(p: dict, pages: int, another_thread_on_cpu: bool) -> bool:
    """The model in plain Python, evaluated in the C++ order (so that ties come out the same)."""
    shootdown = p["shootdown_ns"] if another_thread_on_cpu else 0.0
    move = shootdown + p["move_ns_per_ioctl"] + pages * p["move_ns_per_page"]
    return pages > 0 and move < p["copy_ns_per_ioctl"] + pages * p["copy_ns_per_page"]


# --- the decision over injected prices ---------------------------------------------------------------------------

def test_the_documented_prices_break_even_at_52_pages_with_a_running_thread():
    """7 µs shootdown, 165 vs 300 ns/page: MOVE wins from 52 pages on (7000/135 = 51.9) while another thread runs."""
    assert _native.break_even_run(FACTS, True) == 52
    assert not _native.move_is_cheaper(FACTS, 51, True)
    assert _native.move_is_cheaper(FACTS, 52, True) and _native.move_is_cheaper(FACTS, 4096, True)


def test_without_a_running_thread_the_documented_prices_move_every_run():
    """No other thread on a CPU means no shootdown: cheaper per page, MOVE wins even a single page."""
    assert _native.break_even_run(FACTS, False) == 1
    assert _native.move_is_cheaper(FACTS, 1, False)


def test_the_fixed_prices_shift_the_break_even():
    """Per-ioctl prices count once per run: MOVE's 1000 ns more per ioctl adds 1000/135 pages to the break-even."""
    p = prices(copy_ns_per_ioctl=500.0, move_ns_per_ioctl=1500.0)
    assert _native.break_even_run(p, True) == 60  # (7000 + 1000) / 135 = 59.3
    assert _native.break_even_run(p, False) == 8  # 1000 / 135 = 7.4


def test_free_shootdowns_move_even_single_pages():
    """With shootdowns free (arm64 broadcasts TLBI), a running thread changes nothing: MOVE takes single pages."""
    p = prices(shootdown_ns=0.0)
    assert _native.break_even_run(p, True) == _native.break_even_run(p, False) == 1
    assert _native.move_is_cheaper(p, 1, True)


def test_copy_cheaper_per_page_never_moves():
    """MOVE dearer per page and per ioctl: no run is long enough, break_even_run says None."""
    p = prices(move_ns_per_page=400.0, move_ns_per_ioctl=100.0)
    assert _native.break_even_run(p, True) is None and _native.break_even_run(p, False) is None
    assert not any(_native.move_is_cheaper(p, n, t) for n in (1, 64, 1 << 20) for t in (False, True))


def test_a_run_of_no_pages_is_never_moved():
    """Zero pages: nothing to install, so MOVE is not cheaper, however the prices stand."""
    assert not _native.move_is_cheaper(prices(shootdown_ns=0.0, copy_ns_per_ioctl=1e6), 0, False)


def test_at_equal_cost_copy_stays():
    """A tie goes to COPY (it needs nothing exclusive of the source): equal prices never move."""
    p = prices(move_ns_per_page=300.0, shootdown_ns=0.0)
    assert not _native.move_is_cheaper(p, 64, False)
    assert _native.break_even_run(p, False) is None


def test_equal_per_page_prices_leave_it_to_the_fixed_prices():
    """Same price per page: MOVE wins every run when its ioctl is cheaper, none when not."""
    p = prices(move_ns_per_page=300.0, shootdown_ns=0.0, copy_ns_per_ioctl=900.0, move_ns_per_ioctl=800.0)
    assert _native.break_even_run(p, False) == 1 and _native.move_is_cheaper(p, 1 << 30, False)
    assert _native.break_even_run(prices(move_ns_per_page=300.0), True) is None


def test_an_ioctl_advantage_below_the_ioctls_own_rounding_is_no_threshold():
    """Regression: equal per-page prices and a per-ioctl advantage of 2^-22 ns on 1.5 * 2^30 ns ioctls: MOVE wins one
    page, but rounding ties the costs of long runs (2^41 + 1 pages), so no break-even holds."""
    p = prices(copy_ns_per_page=2.0 ** -12, move_ns_per_page=2.0 ** -12, copy_ns_per_ioctl=1.5 * 2 ** 30,
               move_ns_per_ioctl=1.5 * 2 ** 30 - 2.0 ** -22, shootdown_ns=0.0)
    assert _native.move_is_cheaper(p, 1, False) and not _native.move_is_cheaper(p, 2 ** 41 + 1, False)
    assert _native.break_even_run(p, False) is None


def test_move_dearer_per_page_but_cheaper_per_ioctl_wins_only_short_runs():
    """A what-if: short runs go to MOVE, long ones to COPY; no threshold holds, so break_even_run says None."""
    p = prices(move_ns_per_page=310.0, shootdown_ns=0.0, copy_ns_per_ioctl=1000.0)
    assert _native.move_is_cheaper(p, 1, False) and not _native.move_is_cheaper(p, 101, False)
    assert _native.break_even_run(p, False) is None


def test_a_break_even_past_any_address_space_is_never():
    """A per-page advantage too small to repay the shootdown within 2^52 pages counts as never."""
    p = prices(move_ns_per_page=300.0 - 1e-9, shootdown_ns=1e9)
    assert _native.break_even_run(p, True) is None
    assert _native.break_even_run(p, False) == 1


@settings(max_examples=300, deadline=None)
@given(p=st.fixed_dictionaries({k: st.floats(0.0, 1e5) for k in PRICE_KEYS}), thread=st.booleans(),
       n=st.integers(0, 1 << 40))
def test_the_decision_is_the_cost_comparison_and_the_break_even_its_threshold(p, thread, n):
    """For any prices: move_is_cheaper is the model's comparison, and the break-even run is its first winner."""
    assert _native.move_is_cheaper(p, n, thread) == model_says_move(p, n, thread)
    k = _native.break_even_run(p, thread)
    if k is None:
        return
    assert k >= 1 and model_says_move(p, k, thread) and model_says_move(p, k + n, thread)
    assert k == 1 or not model_says_move(p, k - 1, thread)


@pytest.mark.parametrize(("change", "message"), [
    ({"shootdown_ns": None}, "lacks 'shootdown_ns'"),
    ({"move_ns_per_page": -1.0}, "finite number >= 0"),
    ({"copy_ns_per_page": math.nan}, "finite number >= 0"),
    ({"copy_ns_per_ioctl": math.inf}, "finite number >= 0"),
    ({"shootdowns_after_sleep": -1.0}, "shootdowns_after_sleep'\\] must be a finite number >= 0"),
])
def test_malformed_prices_are_refused_by_name(change, message):
    """A missing, negative or non-finite price is a ValueError naming the key, not a silent decision."""
    p = dict(FACTS)
    for key, value in change.items():
        if value is None:
            del p[key]
        else:
            p[key] = value
    with pytest.raises(ValueError, match=message):
        _native.move_is_cheaper(p, 64, True)
    with pytest.raises(ValueError, match=message):
        _native.break_even_run(p, True)


# --- the measurement on this machine -----------------------------------------------------------------------------

def test_the_measured_prices_are_positive_and_finite(need_move):
    """Every price measured here is finite, every per-page and per-ioctl price above 0, and MOVE cheaper per page."""
    p = _native.measure_move_prices()
    assert set(p) == {*PRICE_KEYS, *SLEEP_KEYS, "measured_ms", "measured"} and p["measured"] is True
    assert all(math.isfinite(p[k]) for k in PRICE_KEYS) and p["shootdown_ns"] >= 0
    assert all(0 <= p[k] <= MOVES_PER_SLEEP for k in SLEEP_KEYS), p
    assert all(p[k] > 0 for k in PRICE_KEYS if k != "shootdown_ns"), p
    assert p["move_ns_per_page"] < p["copy_ns_per_page"], p  # MOVE re-points a PTE, COPY copies 4 KiB


def test_the_machine_prices_are_measured_once_and_cached(need_move):
    """Later calls return the first measurement's values, far faster than a fresh one, which leaves the cache."""
    first = _native.measure_move_prices()
    t0 = time.perf_counter()
    again = _native.measure_move_prices()
    cached_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fresh = _native.measure_move_prices(fresh=True)
    fresh_s = time.perf_counter() - t0
    assert again == first and fresh["measured"]
    assert _native.measure_move_prices() == first  # the fresh measurement did not replace the cache
    assert cached_s * 10 < fresh_s, (cached_s, fresh_s)


def test_a_fresh_measurement_stays_within_its_budget(need_move):
    """A whole measurement takes well under 200 ms of wall time (it aims at 20), and reports what it took."""
    t0 = time.perf_counter()
    p = _native.measure_move_prices(fresh=True)
    wall_ms = (time.perf_counter() - t0) * 1e3
    assert wall_ms < 200, p
    assert 0 < p["measured_ms"] <= wall_ms


def test_the_measured_prices_drive_the_decision(need_move):
    """The measured dict passes back into the decision as it is, and agrees with the model over it."""
    p = _native.measure_move_prices()
    for t in (False, True):
        k = _native.break_even_run(p, t)
        assert k is not None and _native.move_is_cheaper(p, k, t) and _native.move_is_cheaper(p, k + 4096, t)
        assert all(_native.move_is_cheaper(p, n, t) == model_says_move(p, n, t) for n in (1, 2, 16, 64, 512))


def test_the_callers_cpu_affinity_is_left_alone(need_move):
    """The measurement pins threads of its own: the calling thread may still run on every CPU it could before."""
    before = os.sched_getaffinity(0)
    _native.measure_move_prices(fresh=True)
    assert os.sched_getaffinity(0) == before


def test_a_running_sibling_makes_move_dearer_with_two_cpus(need_move):
    """With two CPUs a busy sibling thread costs each MOVE ioctl a TLB-flush IPI: shootdown_ns > 0 in 2 of 3."""
    require(len(os.sched_getaffinity(0)) >= 2, "needs two CPUs: one to measure on, one for the sibling")
    require(has_tlb_row(), "no TLB-shootdown IPIs on this architecture (arm64 broadcasts TLBI in hardware)")
    shootdowns = [_native.measure_move_prices(fresh=True)["shootdown_ns"] for _ in range(3)]
    assert sum(s > 0 for s in shootdowns) >= 2, shootdowns


def test_a_sleeping_siblings_cpu_takes_as_many_shootdowns_as_the_moves_times_tell(need_move):
    """A sibling asleep: the MOVEs early in its sleep that /proc/interrupts counts as interrupting its idle CPU are
    the ones whose times stand out, and the last of each sleep is free (the CPU leaves the mm): in 2 of 3."""
    require(len(os.sched_getaffinity(0)) >= 2, "needs two CPUs: one to measure on, one for the sleeping sibling")
    require(has_tlb_row(), "no TLB-shootdown IPIs to count on this architecture (arm64 broadcasts TLBI in hardware)")
    got = [_native.measure_move_prices(fresh=True) for _ in range(3)]
    agree = [p["shootdowns_after_sleep"] == p["shootdowns_after_sleep_timed"] < MOVES_PER_SLEEP for p in got]
    assert sum(agree) >= 2, [{k: p[k] for k in (*SLEEP_KEYS, "shootdown_ns")} for p in got]


def test_with_one_cpu_there_is_no_shootdown(need_move):
    """A process allowed a single CPU has no other CPU for a thread to run on: shootdown_ns is 0."""
    r = run_python("""
        import json, os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from compactor import _native
        print(json.dumps(_native.measure_move_prices(fresh=True)))
    """)
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["shootdown_ns"] == 0 and p["move_ns_per_page"] > 0
    assert p["shootdowns_after_sleep"] == 0 == p["shootdowns_after_sleep_timed"]  # no sibling to sleep


def test_concurrent_first_calls_share_one_measurement(need_move):
    """Threads racing for the first measurement of a fresh process all get the one cached measurement."""
    r = run_python("""
        import json, threading
        from compactor import _native
        got = []
        threads = [threading.Thread(target=lambda: got.append(_native.measure_move_prices())) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(json.dumps(got))
    """)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert len(got) == 4 and all(g == got[0] for g in got)


# ---- The priced policy in collections: hybrid with move_min_run="auto" follows the prices it is given.

FREE_SHOOTDOWNS = {"copy_ns_per_page": 900.0, "copy_ns_per_ioctl": 700.0, "move_ns_per_page": 100.0,
                   "move_ns_per_ioctl": 800.0, "shootdown_ns": 0.0}
DEAR_SHOOTDOWNS = dict(FREE_SHOOTDOWNS, shootdown_ns=1e9)
COPY_CHEAPER = dict(FREE_SHOOTDOWNS, copy_ns_per_page=10.0, move_ns_per_page=1000.0)


@pytest.fixture
def what_if():
    """Sets the prices hybrid's auto policy follows for one test, and restores the measured ones after it."""
    yield _native.set_collector_move_prices
    _native.set_collector_move_prices(None)


@pytest.fixture(scope="module")
def heap16():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="16MiB", live_fraction=0.5, seed=11))
    return heap, compactor.plan(heap)


def test_free_shootdowns_make_hybrid_move_every_page_mutators_included(what_if, heap16, need_move):
    """Shootdowns priced at 0 (as arm64's broadcast TLBI): the GC's runs and the mutators' single pages MOVE."""
    heap, plan = heap16
    what_if(FREE_SHOOTDOWNS)
    r = compactor.collect(heap, "hybrid", mutators=2, plan=plan)
    assert r.raw["priced_policy"]["break_even_run_under_load"] == 1
    assert r.raw["priced_policy"]["moves_learned_from"] == 0  # a what-if's prices are not corrected by the run
    assert r.pages["by_mutators"] > 0 and r.pages["copy"] == 0 and r.pages["move"] > 0
    assert r.pages["copy_short_run"] == 0


def test_dear_shootdowns_make_hybrid_copy_while_a_mutator_computes_and_move_alone(what_if, heap16, need_move):
    """A shootdown priced at 1 s: with a busy mutator on a CPU nothing is MOVEd; with no mutator all is."""
    heap, plan = heap16
    what_if(DEAR_SHOOTDOWNS)
    loaded = compactor.collect(heap, "hybrid", mutators=1, plan=plan, think_ns=50_000, think="busy")
    assert loaded.raw["priced_policy"]["break_even_run_under_load"] > _native.MAX_BATCH  # longer than any run
    assert loaded.counters["ioctl_move"] == 0 and loaded.pages["copy"] > 0
    assert sum(loaded.raw["gc_runs_by_length_log2"]["moved"]) == 0
    alone = compactor.collect(heap, "hybrid", mutators=0, plan=plan)
    assert alone.pages["copy"] == 0 and alone.pages["copy_short_run"] == 0
    assert alone.counters["bytes_moved"] > 0  # runs COPYd alone are those the recycle pool had no pages for


def test_dear_shootdowns_owed_after_a_sleep_make_hybrid_copy_while_the_mutator_sleeps(what_if, heap16, need_move):
    """A shootdown priced at 1 s and a mutator asleep 1 ms between chains: with no MOVE owed after a sleep the GC
    thread MOVEs its runs while the mutator sleeps; with one owed (its idle CPU takes the next MOVE's IPI) it
    COPYs them all, since every MOVE after a sleep would pay first."""
    heap, plan = heap16
    paced = {"mutators": 1, "plan": plan, "think_ns": 1_000_000, "think": "sleep"}
    what_if(dict(DEAR_SHOOTDOWNS, shootdowns_after_sleep=0.0))
    skipped = compactor.collect(heap, "hybrid", **paced)
    assert skipped.raw["priced_policy"]["prices"]["shootdowns_after_sleep"] == 0
    assert sum(skipped.raw["gc_runs_by_length_log2"]["moved"]) > 0
    what_if(dict(DEAR_SHOOTDOWNS, shootdowns_after_sleep=1.0))
    owed = compactor.collect(heap, "hybrid", **paced)
    assert owed.raw["priced_policy"]["prices"]["shootdowns_after_sleep"] == 1
    assert sum(owed.raw["gc_runs_by_length_log2"]["moved"]) == 0 and owed.counters["ioctl_move"] == 0
    assert sum(owed.raw["gc_runs_by_length_log2"]["copied"]) > 0


def test_a_shootdown_owed_after_a_sleep_is_paid_when_the_sleep_is_long_enough_to_earn_it(what_if, heap16, need_move):
    """A shootdown (100 µs) dearer than MOVE saves on any run (800 ns a page, runs of at most 64), owed once after
    each sleep: the GC thread MOVEs while a mutator sleeps 1 ms (the pages it installs before the mutator wakes
    earn the shootdown back), and never while it sleeps 10 µs."""
    heap, plan = heap16
    what_if(dict(FREE_SHOOTDOWNS, shootdown_ns=100_000.0, shootdowns_after_sleep=1.0))
    long_sleeps = compactor.collect(heap, "hybrid", mutators=1, plan=plan, batch=64, think_ns=1_000_000, think="sleep")
    assert long_sleeps.raw["priced_policy"]["break_even_run_under_load"] > 64  # no run of the batch earns it alone
    assert sum(long_sleeps.raw["gc_runs_by_length_log2"]["moved"]) > 0
    short_sleeps = compactor.collect(heap, "hybrid", mutators=1, plan=plan, batch=64, think_ns=10_000, think="sleep")
    assert sum(short_sleeps.raw["gc_runs_by_length_log2"]["moved"]) == 0
    assert sum(short_sleeps.raw["gc_runs_by_length_log2"]["copied"]) > 0


def test_copy_cheaper_per_page_makes_hybrid_never_move(what_if, heap16, need_move):
    """MOVE priced above COPY per page: no run is long enough, alone or not; the prices are reported as given."""
    heap, plan = heap16
    what_if(COPY_CHEAPER)
    r = compactor.collect(heap, "hybrid", mutators=0, plan=plan)
    policy = r.raw["priced_policy"]
    assert policy["prices"]["measured"] is False and policy["prices"]["move_ns_per_page"] == 1000.0
    assert policy["break_even_run_alone"] is None and r.counters["ioctl_move"] == 0


def test_a_fixed_move_min_run_ignores_the_prices(what_if, heap16, need_move):
    """move_min_run=64 is the fixed policy: no prices are reported and mutators' pages COPY whatever they cost."""
    heap, plan = heap16
    what_if(FREE_SHOOTDOWNS)
    r = compactor.collect(heap, "hybrid", mutators=2, plan=plan, move_min_run=64)
    assert r.raw["priced_policy"] is None and r.pages["move"] == 0


def test_measured_prices_learn_the_shootdown_from_the_runs_moves_under_load(heap16, need_move):
    """With this machine's prices, each GC MOVE while a busy mutator runs corrects the shootdown price toward what
    the MOVE cost beyond the model's, and the learned price and break-even run are reported."""
    heap, plan = heap16
    _native.set_collector_move_prices(None)
    r = compactor.collect(heap, "hybrid", mutators=1, plan=plan, think_ns=20_000, think="busy")
    policy = r.raw["priced_policy"]
    assert policy["prices"]["measured"] is True
    moved_runs = sum(r.raw["gc_runs_by_length_log2"]["moved"])
    assert policy["moves_learned_from"] > 0 and moved_runs >= policy["moves_learned_from"]
    assert math.isfinite(policy["shootdown_ns_learned"]) and policy["shootdown_ns_learned"] >= 0
