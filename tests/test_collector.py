"""Collections: stop-the-world and concurrent compaction over userfaultfd verify on every heap shape; the verifier
catches corruption; fallbacks, fault injection, the watchdog and unprivileged runs behave."""

from __future__ import annotations

import random

import numpy as np
import pytest

import compactor
from compactor import HeapCorruption, PlanFileError, WatchdogTimeout
from compactor.layout import NULL_REF

from conftest import run_python

SHAPES = ["uniform", "clustered", "dense-prefix"]
CONCURRENT = ["copy", "move", "move-alloc", "hybrid"]


@pytest.fixture(scope="module", params=SHAPES)
def shaped(request):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", garbage=request.param, seed=21))
    return heap, compactor.plan(heap)


def pages_accounted(r):
    p = r.pages
    return (p["copy"] + p["move"] + p["move_batched"] + p["dense_move"] + p["copy_fallback_pool_empty"]
            + p["copy_fallback_ebusy"] + p["copy_short_run"])


def test_stw_collection_verifies_on_every_heap_shape(shaped):
    heap, plan = shaped
    r = compactor.collect(heap, "stw", plan=plan)
    assert r.verified and r.strategy == "stw" and r.raw["reachable_bytes"] == plan.live_bytes


@pytest.mark.parametrize("strategy", CONCURRENT)
@pytest.mark.parametrize("faults", ["sigbus", "thread"])
@pytest.mark.parametrize("mutators", [0, 1, 4])
def test_concurrent_collection_verifies(shaped, need_move, strategy, faults, mutators):
    heap, plan = shaped
    r = compactor.collect(heap, strategy, faults=faults, mutators=mutators, plan=plan, seed=mutators + 1)
    assert r.verified and r.fallback == ""
    assert (r.strategy, r.faults, r.mutators) == (strategy, faults, mutators)
    assert pages_accounted(r) == r.pages["total"] == plan.num_to_pages
    if mutators:
        assert r.counters["mutator_accesses"] > 0


def test_copy_installs_every_page_with_copy(shaped):
    heap, plan = shaped
    r = compactor.collect(heap, "copy", plan=plan)
    assert r.pages["copy"] == plan.num_to_pages and r.counters["ioctl_move"] == 0
    assert r.counters["madvise_calls"] > 0  # the from-space is released in chunks during the phase


def test_move_batches_runs_of_recycled_pages(need_move):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="8MiB", seed=3))
    plan = compactor.plan(heap)
    r = compactor.collect(heap, "move", plan=plan, batch=16)
    assert r.pages["move_batched"] > plan.num_to_pages // 2
    assert r.counters["ioctl_move"] < plan.num_to_pages // 4
    assert r.counters["madvise_calls"] == 0


def test_move_with_batch_1_moves_page_by_page(need_move):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=3))
    r = compactor.collect(heap, "move", batch=1)
    assert r.pages["move_batched"] == 0 and r.pages["move"] > 0
    assert r.counters["ioctl_move"] >= r.pages["move"]


def test_dense_prefix_pages_are_moved_in_place_without_copy(need_move):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", garbage="dense-prefix", seed=5))
    plan = compactor.plan(heap)
    r = compactor.collect(heap, "move", plan=plan)
    assert r.verified and r.pages["dense_move"] == plan.dense_prefix_pages > 0
    assert r.raw["fillers"] > 0


def test_mutator_writes_are_logged_and_verified(need_move):
    """write_fraction=0.5 makes mutators write payload words, and the verifier accepts the logged writes."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=8))
    r = compactor.collect(heap, "move", mutators=2, write_fraction=0.5)
    assert r.counters["mutator_writes"] > 0
    none = compactor.collect(heap, "move", mutators=2, write_fraction=0.0)
    assert none.counters["mutator_writes"] == 0 and none.counters["mutator_accesses"] > 0


def test_sigbus_faults_are_handled_by_the_mutators_themselves(need_move):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="16MiB", seed=8))
    r = compactor.collect(heap, "copy", faults="sigbus", mutators=2)
    assert r.counters["faults_handled"] > 0 and r.fault_latency_us["samples"] > 0
    lat = r.fault_latency_us
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert len(r.latency_samples_ns) == lat["samples"]


def test_thread_mode_faults_are_resolved_by_the_fault_thread():
    """faults="thread" adds a fault-handling thread (one more than SIGBUS mode needs), and it handles faults."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="16MiB", seed=8))
    plan = compactor.plan(heap)
    thread = compactor.collect(heap, "copy", faults="thread", mutators=2, plan=plan)
    sigbus = compactor.collect(heap, "copy", faults="sigbus", mutators=2, plan=plan)
    assert thread.counters["faults_handled"] > 0
    assert thread.raw["threads_needed"] == 2 + 2 and sigbus.raw["threads_needed"] == 2 + 1


def test_batch_size_sets_the_number_of_copy_ioctls():
    """batch=1 installs each page with its own UFFDIO_COPY; batch=16 installs the same pages in 16-page ioctls."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=9))
    plan = compactor.plan(heap)
    one = compactor.collect(heap, "copy", plan=plan, batch=1)
    sixteen = compactor.collect(heap, "copy", plan=plan, batch=16)
    assert one.counters["ioctl_copy"] == one.pages["copy"] == plan.num_to_pages
    assert sixteen.pages["copy"] == plan.num_to_pages
    assert -(-plan.num_to_pages // 16) <= sixteen.counters["ioctl_copy"] <= plan.num_to_pages // 8


@pytest.mark.parametrize("access", ["random", "sequential", "hot-set"])
def test_every_access_pattern_has_mutators_resolve_pages(access):
    """Each access pattern runs mutators that touch the heap and resolve some of its pages themselves."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=9))
    r = compactor.collect(heap, "copy", mutators=2, access=access)
    assert r.counters["mutator_accesses"] > 0 and 0 < r.pages["by_mutators"] <= r.pages["total"]


def root_indices_written(access):
    """The root (by index) each access of one mutator started at: with hops=0 and every access writing, the
    write log names each chain's root object in order."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=9))
    r = compactor.collect(heap, "copy", mutators=1, access=access, hops=0, write_fraction=1.0, think_ns=2_000,
                          think="busy")
    root_of = {int(heap.identity[obj]): i for i, obj in enumerate(heap.roots)}
    return [root_of[int(w)] for w in r.mutator_writes[:, 0]], len(heap.roots)


def test_access_patterns_start_their_chains_where_they_say():
    """sequential walks the roots in order, hot-set starts 90% of chains in the first tenth of the roots, random
    spreads them (about a tenth there): read from the mutator's write log."""
    seq, n = root_indices_written("sequential")
    steps = [(b - a) % n for a, b in zip(seq, seq[1:])]  # > 1 only past roots with no payload word to write
    assert len(seq) > 50 and all(1 <= d <= 8 for d in steps) and steps.count(1) > 0.8 * len(steps)
    hot, n = root_indices_written("hot-set")
    rnd, _ = root_indices_written("random")
    share = lambda roots: sum(i < max(1, n // 10) for i in roots) / len(roots)  # noqa: E731
    assert len(hot) > 50 and len(rnd) > 50
    assert share(hot) > 0.8 and share(rnd) < 0.3, (share(hot), share(rnd))


def test_repeated_collections_reuse_one_heap_and_plan(need_move):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=10))
    plan = compactor.plan(heap)
    digests = {compactor.collect(heap, s, plan=plan).raw["digest"] for s in ["stw", "copy", "move", "stw"]}
    assert len(digests) == 1


# ---- the verifier catches corruption ------------------------------------------------------------------------

def _reference_slot(heap, plan):
    """(pre-compact byte offset of a reference slot of a live object, its current value)."""
    live = np.flatnonzero(plan.live & (heap.num_refs > 0))
    for i in live:
        for k in range(int(heap.num_refs[i])):
            if heap.refs[int(heap.ref_start[i]) + k] >= 0:
                return int(heap.offset[i]) + 16 + 4 * k, i
    raise AssertionError("no live reference")


def _heap_to_corrupt(seed):
    """A planned heap whose pristine digest is taken, so that writes into its space afterwards are corruption."""
    heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=seed))
    plan = compactor.plan(heap)
    heap.pristine_digest()
    return heap, plan


def test_verifier_catches_a_flipped_reference():
    heap, plan = _heap_to_corrupt(12)
    slot, obj = _reference_slot(heap, plan)
    view = heap.space.view().view(np.uint32)
    other = int(heap.offset[np.flatnonzero(plan.live)[0]])
    view[slot // 4] = other if view[slot // 4] != other else int(heap.offset[np.flatnonzero(plan.live)[1]])
    with pytest.raises(HeapCorruption, match="first differing object: object identity"):
        compactor.collect(heap, "stw", plan=plan)


def test_verifier_catches_a_dropped_object():
    heap, plan = _heap_to_corrupt(12)
    slot, obj = _reference_slot(heap, plan)
    heap.space.view().view(np.uint32)[slot // 4] = NULL_REF  # the referent's subtree drops out of the graph
    with pytest.raises(HeapCorruption, match="differs"):
        compactor.collect(heap, "copy", plan=plan)


def test_verifier_catches_a_corrupted_payload_word():
    heap, plan = _heap_to_corrupt(13)
    big = np.flatnonzero(plan.live & (heap.size >= 64))[5]
    heap.space.view()[int(heap.offset[big]) + int(heap.size[big]) - 1] ^= 0xFF
    with pytest.raises(HeapCorruption, match="payload word"):
        compactor.collect(heap, "stw", plan=plan)


def test_a_plan_for_another_page_size_is_refused():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=1), page_size=16384)
    plan = compactor.plan(heap, page_size=16384 if compactor.uffd.PAGE_SIZE != 16384 else 4096)
    with pytest.raises(PlanFileError, match="-byte pages"):
        compactor.collect(heap, "stw", plan=plan)


# ---- fault injection, the watchdog, unprivileged runs --------------------------------------------------------

def test_injected_ebusy_falls_back_to_copy_and_verifies(need_move):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=14))
    r = compactor.collect(heap, "move", batch=8, inject="EBUSY", inject_fraction=0.3)
    assert r.verified and r.counters["ebusy"] > 0 and r.pages["copy_fallback_ebusy"] > 0
    r = compactor.collect(heap, "move", mutators=2, inject="EBUSY", inject_fraction=1.0)
    assert r.verified and r.counters["ioctl_move"] == r.counters["ebusy"] and r.pages["move"] == 0


def test_injected_eagain_is_retried_and_verifies(need_move):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=15))
    r = compactor.collect(heap, "move", batch=8, inject="EAGAIN", inject_fraction=0.3)
    assert r.verified and r.counters["eagain"] > 0


def test_injected_enomem_is_retried_and_verifies():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=15))
    r = compactor.collect(heap, "copy", inject="ENOMEM", inject_fraction=0.2)
    assert r.verified and r.counters["enomem"] > 0


def test_persistent_enomem_aborts_cleanly_and_the_heap_can_be_reset():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=16))
    with pytest.raises(compactor.UffdError, match="ENOMEM"):
        compactor.collect(heap, "copy", mutators=2, inject="ENOMEM", inject_fraction=1.0)
    assert compactor.collect(heap, "copy").verified


@pytest.mark.parametrize("faults", ["sigbus", "thread"])
@pytest.mark.parametrize("mutators", [0, 2])
def test_watchdog_aborts_a_stalled_run(faults, mutators):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=17))
    with pytest.raises(WatchdogTimeout, match="no page made progress"):
        compactor.collect(heap, "copy", faults=faults, mutators=mutators, watchdog=0.5, stall_seconds=60)
    assert compactor.collect(heap, "copy", faults=faults, mutators=mutators).verified


def test_bad_arguments_are_clear_errors():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=1))
    with pytest.raises(ValueError, match="unknown strategy"):
        compactor.collect(heap, "shuffle")
    with pytest.raises(ValueError, match="fault mode"):
        compactor.collect(heap, "copy", faults="poll")
    with pytest.raises(ValueError, match="batch"):
        compactor.collect(heap, "copy", batch=0)
    with pytest.raises(ValueError, match="mutators"):
        compactor.collect(heap, "copy", mutators=-1)


def test_unprivileged_concurrent_collection_verifies(need_move):
    r = run_python("""
        import compactor
        heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=2))
        plan = compactor.plan(heap)
        drop_privileges()
        assert os.getuid() == 65534
        for s in ("copy", "move"):
            res = compactor.collect(heap, s, mutators=2, plan=plan)
            print(s, res.verified, res.strategy, repr(res.fallback))
    """, user=65534)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["copy True copy ''", "move True move ''"]


def test_a_collection_after_import_opens_no_file_of_the_installed_package(need_move):
    """Regression (CI, package under /root, mode 700): a MOVE collection read the kernel-bug table at first use,
    after the process had dropped privileges, and failed with PermissionError. Every package file a collection
    needs is read at import."""
    r = run_python("""
        import os, sys, compactor
        pkg = os.path.dirname(compactor.__file__) + os.sep
        def refuse_package_files(event, args):  # every open: open(), io.open_code (imports), os.open
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and \
                    os.path.abspath(os.fsdecode(args[0])).startswith(pkg):
                raise PermissionError(13, "the package is unreadable after import in this test", args[0])
        sys.addaudithook(refuse_package_files)
        heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=3))
        for s in ("copy", "move", "hybrid"):
            print(s, compactor.collect(heap, s, mutators=1).strategy)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:6] == ["copy", "copy", "move", "move", "hybrid", "hybrid"]


def test_previous_sigbus_handler_is_restored_after_a_collection():
    r = run_python(f"""
        import faulthandler, sys
        faulthandler.enable()
        import compactor
        from compactor import uffd
        heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=2))
        assert compactor.collect(heap, "copy", faults="sigbus", mutators=2).verified
        u = uffd.Userfaultfd(); m = uffd.Mapping({compactor.uffd.PAGE_SIZE})
        u.register(m.address, m.length); u.poison(m.address, m.length)
        print("poisoned", flush=True)
        m[0]
    """)
    assert "poisoned" in r.stdout
    assert r.returncode == -7 and "Bus error" in r.stderr  # faulthandler, not our handler, saw it


@pytest.mark.slow
def test_stress_200_randomized_collections_with_mutators(need_move):
    rnd = random.Random(1234)
    heaps = [compactor.Heap.generate(compactor.HeapSpec(size=f"{rnd.choice([1, 2, 3])}MiB", garbage=g,
                                                        live_fraction=rnd.uniform(0.2, 0.9), seed=i))
             for i, g in enumerate(SHAPES * 2)]
    plans = [compactor.plan(h) for h in heaps]
    for i in range(200):
        k = rnd.randrange(len(heaps))
        strategy, faults, mutators = rnd.choice(CONCURRENT), rnd.choice(["sigbus", "thread"]), rnd.choice([1, 2, 4])
        r = compactor.collect(heaps[k], strategy, faults=faults, mutators=mutators, batch=rnd.choice([1, 8, 64]),
                              access=rnd.choice(["random", "sequential", "hot-set"]), seed=i, plan=plans[k],
                              write_fraction=rnd.uniform(0, 0.3))
        # each run is the configuration it was asked for, with its mutators running, and maps every to-space page
        assert (r.strategy, r.faults, r.mutators, r.fallback) == (strategy, faults, mutators, ""), i
        assert r.counters["mutator_accesses"] > 0, i
        assert r.pages["total"] == plans[k].num_to_pages and r.pages["by_mutators"] <= r.pages["total"], i
