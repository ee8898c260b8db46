"""Signals in the fault path: an app's own signals (a profiler's SIGPROF, a timer's SIGALRM that interrupts system
calls, a SIGUSR1 whose handler reads the heap) sent to every mutator during collections, also while a mutator's
SIGBUS handler waits for a page; the runs verify and end, and the handlers really ran where they were meant to."""

from __future__ import annotations

import pytest

import compactor

SIGNALS = ["sigprof", "sigalrm", "sigusr1"]


@pytest.fixture(scope="module")
def heap_and_plan():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="8MiB", seed=13))
    return heap, compactor.plan(heap)


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("faults", ["sigbus", "thread"])
@pytest.mark.parametrize("strategy", ["copy", "move", "hybrid"])
def test_signals_at_one_khz_reach_every_mutator_and_the_collection_verifies(heap_and_plan, need_move, signal, faults,
                                                                            strategy):
    """2 mutators signalled 1000 times a second: handlers run (no more often than sent), and the heap verifies."""
    heap, plan = heap_and_plan
    r = compactor.collect(heap, strategy, faults=faults, mutators=2, plan=plan, signal=signal, signal_hz=1000)
    c = r.counters
    assert r.verified and 0 < c["signals_handled"] <= c["signals_sent"]
    if signal == "sigusr1":  # its handler reads a root each time it runs while its mutator is not parked
        assert 0 < c["signal_heap_reads"] <= c["signals_handled"]
    else:
        assert c["signal_heap_reads"] == 0


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("backoff", ["art", "futex"])
def test_a_signal_interrupts_a_sigbus_handler_waiting_for_the_page_the_gc_holds(heap_and_plan, signal, backoff):
    """While the GC thread holds a page for 0.5 s, signals reach the SIGBUS handler waiting for it (its nanosleep
    or futex wait is interrupted: counted as in the wait), and the wait resumes: the run verifies."""
    heap, plan = heap_and_plan
    r = compactor.collect(heap, "copy", faults="sigbus", mutators=1, plan=plan, signal=signal, signal_hz=1000,
                          stall_seconds=0.5, backoff=backoff)
    assert r.verified and r.counters["signals_in_fault_wait"] > 0


def test_a_sigusr1_handler_that_faults_on_the_heap_is_resolved_by_a_nested_sigbus_handler(heap_and_plan):
    """A SIGUSR1 handler reading roots while the GC holds its first page (and the mutator sleeps between chains)
    faults on pages not yet mapped; SIGBUS handlers nested in it resolve those faults and the heap verifies."""
    heap, plan = heap_and_plan
    r = compactor.collect(heap, "copy", faults="sigbus", mutators=1, plan=plan, signal="sigusr1", signal_hz=2000,
                          stall_seconds=0.5, think_ns=1_000_000, think="sleep")
    c = r.counters
    assert r.verified and c["signal_heap_faults"] > 0 and c["signal_heap_reads"] >= c["signal_heap_faults"]


def test_signals_are_off_by_default(heap_and_plan):
    """Without the signal option no signal is sent or handled."""
    heap, plan = heap_and_plan
    r = compactor.collect(heap, "copy", faults="sigbus", mutators=1, plan=plan)
    assert (r.counters["signals_sent"], r.counters["signals_handled"]) == (0, 0)


def test_sigprof_at_one_khz_over_many_collections_never_hangs_or_corrupts(heap_and_plan, need_move):
    """Forty collections back to back, every strategy and fault mode, with SIGPROF at 1 kHz per mutator: each
    handles signals (a failed verification or a hang, turned into an error by the watchdog, raises)."""
    heap, plan = heap_and_plan
    done = 0
    for i in range(40):
        strategy = ["copy", "move", "move-alloc", "hybrid"][i % 4]
        faults = ["sigbus", "thread"][(i // 4) % 2]
        r = compactor.collect(heap, strategy, faults=faults, mutators=2, plan=plan, signal="sigprof", signal_hz=1000,
                              seed=i, pre_pause_ms=1, alloc_rate=(64 << 20) if i % 3 == 0 else 0, watchdog=5)
        done += r.verified and r.counters["signals_handled"] > 0
    assert done == 40
