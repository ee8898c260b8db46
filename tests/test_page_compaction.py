"""compact_page against a brute-force reference, byte for byte: every live object lands at its brute-force
post-compact offset with its bytes unchanged except its reference slots, each rewritten to its referent's
post-compact offset. Heaps are chosen to reach the edges of the grouped, prefetching forward (objects with more
slots than one group, objects straddling pages, a dense prefix). And the compaction floor: its rows, and that it
leaves the heap as it was."""

from __future__ import annotations

import numpy as np
import pytest

import compactor
from compactor import PlanFileError, _native
from compactor.layout import NULL_REF

from heap_helpers import brute_force, make_heap

HEAPS = {
    # many slots per object: a page's 64-slot groups flush inside objects, and objects straddle pages
    "many-refs": compactor.HeapSpec(size="2MiB", refs_per_object=40.0, sizes=(64, 200, 520, 4104), seed=5),
    "art": compactor.HeapSpec(size="4MiB", seed=6),
    "dense-prefix": compactor.HeapSpec(size="4MiB", garbage="dense-prefix", refs_per_object=6.0, seed=7),
    "clustered": compactor.HeapSpec(size="4MiB", garbage="clustered", seed=8),
    "all-live": compactor.HeapSpec(size="1MiB", live_fraction=1.0, refs_per_object=3.0, seed=9),
}


def expected_objects(heap, plan):
    """(post-compact offset, expected bytes) of every live object, by brute force over the pristine image."""
    heap.reset()
    image = np.array(heap.space.view(), copy=True)
    _, pc, _, _ = brute_force(heap, plan.live, plan.page_size)
    out = []
    for i in np.flatnonzero(plan.live):
        off, size, n = int(heap.offset[i]), int(heap.size[i]), int(heap.num_refs[i])
        obj = image[off:off + size].copy()
        targets = heap.refs[int(heap.ref_start[i]):int(heap.ref_start[i]) + n]
        slots = np.array([NULL_REF if t < 0 else pc[int(t)] for t in targets], dtype=np.uint32)
        obj[16:16 + 4 * n] = slots.view(np.uint8)
        out.append((pc[i], obj))
    return out


def check_byte_exact(heap, plan, strategy):
    expected = expected_objects(heap, plan)
    r = compactor.collect(heap, strategy, plan=plan)
    assert r.strategy == strategy and r.fallback == ""
    after = heap.space.view()
    for at, obj in expected:
        got = after[at:at + obj.size]
        assert np.array_equal(got, obj), f"object at post-compact offset {at} differs"
    tail = after[plan.post_compact_end:plan.num_to_pages * plan.page_size]
    assert not tail.any(), "bytes after the compacted heap in its last page are not zero"


@pytest.mark.parametrize("shape", sorted(HEAPS))
@pytest.mark.parametrize("strategy", ["stw", "copy", "move"])
def test_every_live_object_lands_byte_exact_at_its_brute_force_offset(shape, strategy, need_move):
    heap = compactor.Heap.generate(HEAPS[shape])
    check_byte_exact(heap, compactor.plan(heap), strategy)


@pytest.mark.parametrize("strategy", ["stw", "copy"])
def test_objects_with_more_slots_than_a_group_straddling_pages_are_forwarded(strategy):
    # garbage, then live objects of 700 and 2000 slots (2.8 and 8 KiB: each spans pages and several groups of 64
    # slots), each slot pointing at one of the small live objects that follow, or null.
    sizes = [4000, 16 + 4 * 700, 24, 16 + 4 * 2000] + [24] * 50 + [40] * 30
    small = list(range(4, 4 + 50))
    refs = {1: [small[j % 50] if j % 7 else -1 for j in range(700)],
            3: [small[(3 * j) % 50] if j % 5 else -1 for j in range(2000)]}
    nrefs = [0, 700, 0, 2000] + [0] * 80
    live = [0, 1, 0, 1] + [1] * 50 + [0] * 30
    heap = make_heap(sizes, live, 5 * 4096, refs=refs, nrefs=nrefs, roots=[1, 3])
    plan = compactor.plan(heap)
    assert list(np.flatnonzero(plan.live)) == [1, 3] + small
    check_byte_exact(heap, plan, strategy)


def test_compaction_floor_rows_and_the_heap_is_left_as_it_was():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="4MiB", seed=11))
    plan = compactor.plan(heap)
    heap.reset()
    before = np.array(heap.space.view(), copy=True)
    rows = _native.measure_compaction_floor(heap.space, plan.native, 2)
    assert [m["name"] for m in rows] == ["page_copy", "live_stride_copy", "compact_page"]
    for m in rows:
        assert len(m["ns_per_page"]) == 2 and all(x > 0 for x in m["ns_per_page"]) and m["median_ns_per_page"] > 0
    assert np.array_equal(heap.space.view(), before)
    assert compactor.collect(heap, "stw", plan=plan).verified  # the space is still the pristine heap


def test_compaction_floor_refuses_a_plan_for_another_heap():
    small = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=1))
    big = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=1))
    with pytest.raises(PlanFileError, match="plan is for a heap of"):
        _native.measure_compaction_floor(small.space, compactor.plan(big).native, 1)
    with pytest.raises(ValueError, match="repetitions"):
        _native.measure_compaction_floor(small.space, compactor.plan(small).native, 0)


@pytest.mark.parametrize("page_size", [4096, 16384])
def test_the_runner_measures_the_compaction_floor_of_a_plan_file(tmp_path, page_size):
    # User-space compaction only: a 16 KiB plan is measured on a 4 KiB kernel too.
    import json
    import subprocess

    from compactor.bench.suite import runner_path

    heap = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=12), page_size=page_size)
    path = tmp_path / "heap.plan"
    compactor.plan(heap, page_size=page_size).save(str(path))
    p = subprocess.run([runner_path(), str(path), "--compaction-floor", "--repeat", "2"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [m["name"] for m in rows] == ["page_copy", "live_stride_copy", "compact_page"]
    assert all(len(m["ns_per_page"]) == 2 and m["median_ns_per_page"] > 0 for m in rows)
