"""Young collections as ART 16 runs them (compactor.generations): generational heaps, marking from the roots and
the dirty cards only, the old generation mapped back in place, promotion as FinishPhase does it, and sequences of
young and full collections that verify at every step."""

from __future__ import annotations

import numpy as np
import pytest

import compactor
from compactor import HeapCorruption, PlanFileError
from compactor import generations as G
from compactor.heap import Heap

STRATEGIES = ["copy", "move", "move-alloc", "hybrid"]


def gen_spec(**kw):
    base = dict(size="4MiB", old_fraction=0.6, mid_fraction=0.1, young_survival=0.1, seed=5)
    base.update(kw)
    return compactor.HeapSpec(**base)


@pytest.fixture(scope="module")
def gheap():
    return Heap.generate(gen_spec())


def rebuilt(heap, refs=None, cards=None):
    """The same heap with some references or cards changed (a new table)."""
    out = Heap(heap.heap_size, heap.offset, heap.size, heap.num_refs, heap.identity,
               heap.refs if refs is None else refs, heap.roots, spec=heap.spec)
    g = heap.generations
    out.generations = G.Generations(g.old_end, g.mid_end, g.dirty_cards if cards is None else cards)
    return out


def test_a_generational_heap_has_its_generations_and_exactly_the_cards_a_barrier_leaves(gheap):
    """old/mid/young where the spec puts them; every old object holding a younger reference is on a dirty card."""
    g = gheap.generations
    assert 0 < g.old_end < g.mid_end < gheap.used_end
    assert abs(g.old_end - 0.6 * gheap.heap_size) < 4096 and abs(g.mid_end - g.old_end - 0.1 * gheap.heap_size) < 4096
    exact = G.exact_dirty_cards(gheap.offset, gheap.num_refs, gheap.refs, g.old_end)
    assert exact.any() and not (exact & ~g.dirty_cards).any()  # stale cards may be dirty too, never the reverse
    assert g.dirty_cards.sum() > exact.sum()  # stale_cards=0.02 dirtied some clean ones


def test_young_marking_never_enters_the_old_generation(gheap):
    """Young marking: no old object is marked but those on dirty cards; everything young the full marking reaches
    from the roots is marked (the cards keep more, never less)."""
    from compactor.marking import mark

    young, full = mark(gheap, "young"), mark(gheap, "full")
    old = gheap.offset < gheap.generations.old_end
    assert np.array_equal(young.live & old, young.card_objects)
    assert not (full.live & ~old & ~young.live).any()


@pytest.mark.parametrize("kind", ["young", "full"])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("faults", ["sigbus", "thread"])
@pytest.mark.parametrize("mutators", [0, 1])
def test_young_and_full_collections_verify(gheap, need_move, kind, strategy, faults, mutators):
    """Every strategy x fault mode x mutators (0, 1), young and full, on a generational heap."""
    plan = compactor.plan(gheap, kind=kind)
    r = compactor.collect(gheap, strategy, faults=faults, mutators=mutators, plan=plan, seed=3)
    assert r.verified and r.kind == kind and r.pages["total"] == plan.num_to_pages
    gm = r.generational
    if kind == "young":  # the old generation and the page it ends on are mapped back, the rest compacted
        assert gm["pages_mapped_back_move"] + gm["pages_mapped_back_copy"] == plan.dense_prefix_pages
        assert gm["pages_compacted"] == plan.num_to_pages - plan.dense_prefix_pages
        by_move = strategy != "copy" and mutators == 0  # hybrid alone MOVEs every run; mutators may COPY pages
        assert (gm["pages_mapped_back_copy"] == 0) if strategy in ("move", "move-alloc") or by_move else True
        assert gm["pages_mapped_back_move"] == 0 if strategy == "copy" else True


@pytest.mark.parametrize("strategy", ["stw", "copy"])
def test_a_young_collection_leaves_old_pages_without_card_objects_byte_for_byte(gheap, strategy):
    """Stop-the-world and concurrent young collections map the old pages that hold no object on a dirty card back
    exactly as they were, and compact the rest: the pages above the old generation change."""
    plan = compactor.plan(gheap, kind="young")
    gheap.reset()
    before = np.array(gheap.space.view(), copy=True)
    r = compactor.collect(gheap, strategy, plan=plan)
    after = gheap.space.view()
    ps = plan.page_size
    per_page = ps // 512
    old_pages = plan.old_gen_end // ps
    # No object on a dirty card starts between the object covering the page's start and the page's end.
    untouched = [pg for pg in range(old_pages)
                 if not plan.live_words[int(plan.first_obj[pg]) // 512:(pg + 1) * per_page].any()]
    assert r.verified and r.kind == "young" and len(untouched) > old_pages // 4
    for pg in untouched:
        assert np.array_equal(before[pg * ps:(pg + 1) * ps], after[pg * ps:(pg + 1) * ps]), f"old page {pg} changed"
    young = slice(plan.slide_begin, plan.post_compact_end)
    assert not np.array_equal(before[young], after[young])


def test_a_planted_old_to_young_reference_on_a_clean_card_is_caught(gheap):
    """An old object on a clean card made to hold the only reference to a dead young object: the young collection
    does not see it (so the card table is what finds such references) and the verifier names the old object."""
    from compactor.marking import mark

    g = gheap.generations
    live = mark(gheap, "full").live
    off = gheap.offset.astype(np.int64)
    clean_old = np.flatnonzero((off < g.old_end) & live & (gheap.num_refs > 0)
                               & ~g.dirty_cards[np.minimum(off // G.CARD_SIZE, g.dirty_cards.size - 1)])
    dead_young = np.flatnonzero((off >= g.mid_end) & ~mark(gheap, "young").live & (gheap.num_refs == 0))
    holder, target = int(clean_old[0]), int(dead_young[len(dead_young) // 2])
    refs = gheap.refs.copy()
    refs[int(gheap.ref_start[holder])] = target
    planted = rebuilt(gheap, refs=refs)
    with pytest.raises(HeapCorruption, match=f"object identity {int(gheap.identity[holder]):#x}"):
        compactor.collect(planted, "copy", kind="young")
    # The same store with its card dirtied, as the write barrier would have: the target survives and verifies.
    cards = g.dirty_cards.copy()
    cards[off[holder] // G.CARD_SIZE] = True
    r = compactor.collect(rebuilt(gheap, refs=refs, cards=cards), "copy", kind="young")
    assert r.verified


def brute_force_after(heap, plan):
    """Promotion recomputed without the planner's formula: survivors above the slide begin packed in order from
    it; the new old end is where the first survivor of the old young generation lands, the new mid end the end."""
    from compactor.marking import mark

    live = mark(heap, plan.kind).live
    off = heap.offset.astype(np.int64)
    size = heap.size.astype(np.int64)
    pos = plan.slide_begin
    new = {}
    for i in np.flatnonzero(live & (off >= plan.slide_begin)):
        new[int(heap.identity[i])] = pos
        pos += int(size[i])
    firsts = [new[int(heap.identity[i])] for i in np.flatnonzero(live & (off >= heap.generations.mid_end))
              if int(heap.identity[i]) in new]
    return new, (min(firsts) if firsts else pos), pos


@pytest.mark.parametrize("kind", ["young", "full"])
def test_promotion_moves_the_boundaries_as_arts_finish_phase_does(gheap, kind):
    """after_collection: old_end becomes the post-compact end of the old and mid generations, mid_end the
    post-compact end; every survivor sits where a brute-force slide puts it; the cards are exact."""
    plan = compactor.plan(gheap, kind=kind)
    nxt = G.after_collection(plan)
    expected, old_end, end = brute_force_after(gheap, plan)
    assert (nxt.generations.old_end, nxt.generations.mid_end) == (old_end, end) and end == plan.post_compact_end
    where = dict(zip(nxt.identity.tolist(), nxt.offset.tolist()))
    assert all(where[i] == o for i, o in expected.items())
    assert np.array_equal(nxt.generations.dirty_cards,
                          G.exact_dirty_cards(nxt.offset, nxt.num_refs, nxt.refs, nxt.generations.old_end))
    # What was reachable still is, with the same identities, sizes and payload: the digests agree.
    assert nxt.pristine_digest()[0] == gheap.pristine_digest()[0]


def test_a_sequence_of_young_collections_then_a_full_one_verifies_at_every_step(need_move):
    """Three epochs of allocation and reference stores, each ended by a young collection, then a full one and a
    young one again: each collection (copy and move, a mutator each) verifies, and promotion moves old_end up."""
    heap = Heap.generate(gen_spec(size="8MiB", seed=9))
    old_ends = []
    for i, kind in enumerate(["young", "young", "young", "full", "young"]):
        plan = compactor.plan(heap, kind=kind)
        for strategy in ("copy", "move"):
            assert compactor.collect(heap, strategy, mutators=1, plan=plan, seed=i).verified
        old_ends.append(heap.generations.old_end)
        heap = G.mutate(G.after_collection(plan, seed=i), alloc_bytes=1 << 20, seed=50 + i, tag=100 + i)
    assert old_ends[0] < old_ends[1] <= old_ends[2] <= old_ends[3]


def test_young_collections_of_a_mostly_old_heap_move_old_pages_untouched(need_move):
    """With an 80% old generation and 10% young survival, a young MOVE collection updates only the old pages that
    hold an object on a dirty card and maps every old page back by MOVE."""
    heap = Heap.generate(gen_spec(size="8MiB", old_fraction=0.8, mid_fraction=0.05, seed=2))
    plan = compactor.plan(heap, kind="young")
    r = compactor.collect(heap, "move", plan=plan)
    gm = r.generational
    assert r.verified and gm["pages_mapped_back_move"] == plan.dense_prefix_pages
    assert 0 < gm["old_pages_updated"] < gm["old_pages"] // 4
    assert gm["dirty_cards"] == int(heap.generations.dirty_cards.sum()) and gm["card_objects"] > 0
    assert gm["freed_bytes"] == heap.used_end - plan.post_compact_end > 0


def test_young_collections_need_a_generational_heap(gheap, tmp_path):
    """A young collection of a single-generation heap, an unknown kind, and a plan file whose old generation does
    not end inside its dense prefix are refused with the reason."""
    single = Heap.generate(compactor.HeapSpec(size="1MiB", seed=1))
    with pytest.raises(ValueError, match="generational heap"):
        compactor.plan(single, kind="young")
    path = tmp_path / "y.plan"
    plan = compactor.plan(gheap, kind="young")
    plan.save(path)
    raw = bytearray(path.read_bytes())
    end = plan.old_gen_end.to_bytes(8, "little")
    at = raw.rindex(end)  # the last section's one value
    raw[at:at + 8] = (plan.dense_prefix_pages * plan.page_size + 8).to_bytes(8, "little")
    (tmp_path / "bad.plan").write_bytes(bytes(raw))
    with pytest.raises(PlanFileError, match="old_gen_end .* does not lie inside the dense prefix"):
        compactor.Plan.load(tmp_path / "bad.plan")
    with pytest.raises(ValueError, match="unknown collection kind"):
        compactor.plan(gheap, kind="minor")


@pytest.mark.parametrize(("kw", "message"), [
    (dict(old_fraction=1.2), "old_fraction must lie in"),
    (dict(old_fraction=0.9, mid_fraction=0.1), "leave the young generation"),
    (dict(old_fraction=0.0, mid_fraction=0.1), "needs an old generation"),
    (dict(young_survival=-0.1), "young_survival must lie in"),
])
def test_bad_generation_specs_are_refused(kw, message):
    """HeapSpec refuses generation shares that do not make a heap, naming the field."""
    with pytest.raises(ValueError, match=message):
        gen_spec(**kw)


@pytest.mark.parametrize("faults", ["sigbus", "thread"])
def test_young_collections_with_allocating_signalled_mutators_verify_every_new_object(gheap, need_move, faults):
    """Two mutators allocating (64 MiB/s) and taking SIGUSR1 (whose handler reads the heap) during young MOVE and
    COPY collections: every new object verifies, and the old generation is mapped back by the strategy's method."""
    plan = compactor.plan(gheap, kind="young")
    for strategy in ("copy", "move"):
        r = compactor.collect(gheap, strategy, faults=faults, mutators=2, plan=plan, alloc_rate=64 << 20,
                              think_ns=20_000, signal="sigusr1", seed=7)
        gm = r.generational
        assert r.verified and r.raw["new_objects_verified"] == r.mutator_view["new_objects"] > 0
        assert gm["pages_mapped_back_move"] + gm["pages_mapped_back_copy"] == plan.dense_prefix_pages
        assert gm["pages_mapped_back_move" if strategy == "move" else "pages_mapped_back_copy"] > 0


def test_a_young_plan_file_carries_the_old_generations_end_and_the_runner_collects_it(gheap, tmp_path, need_move):
    """A young plan saves with one more section (the old generation's end; a full plan's file keeps the twelve of
    version 1), loads back as a young plan, and compactor-runner runs it: young MOVE and COPY collections verify
    with the old generation mapped back."""
    import json
    import subprocess

    from compactor.bench.suite import runner_path

    plan = compactor.plan(gheap, kind="young")
    path = tmp_path / "young.plan"
    plan.save(path)
    back = compactor.Plan.load(path)
    assert (back.kind, back.old_gen_end) == ("young", plan.old_gen_end)
    assert back.dense_prefix_pages == plan.dense_prefix_pages
    for strategy in ("copy", "move"):
        p = subprocess.run([runner_path(), str(path), "--strategy", strategy, "--mutators", "1"], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        run = json.loads(p.stdout)["runs"][0]
        dense = run["pages"]["dense_move" if strategy == "move" else "dense_copy"]
        assert run["verified"] and dense > 0.9 * plan.dense_prefix_pages


@pytest.mark.parametrize("shape", [dict(old_fraction=0.3, mid_fraction=0.3, mid_survival=0.0),
                                   dict(old_fraction=0.7), dict(old_fraction=0.3)])
def test_a_dead_run_starting_at_the_old_generations_end_gets_its_filler(shape):
    """Regression (found in review): when the last old object was on a clean card (no live bit) and the objects
    right above the old generation's end were dead, the in-place walk wrote no filler there, and a dead object
    crossing the dense prefix's end kept its header over survivors slid onto its tail: the heap did not parse.
    Forty seeds per shape: each young collection verifies, and where that case arises (a dead object at the old
    generation's end after an old object on a clean card) the compacted heap holds a filler there."""
    from compactor.layout import CLASS_FILLER
    from compactor.marking import mark

    cases = 0
    for seed in range(40):
        heap = Heap.generate(compactor.HeapSpec(size="2MiB", seed=seed, **shape))
        m = mark(heap, "young")
        end = heap.generations.old_end
        first_young = int(np.searchsorted(heap.offset, end))
        case = not m.live[first_young] and not m.card_objects[first_young - 1]
        assert compactor.collect(heap, "copy", kind="young").verified
        if case:
            cases += 1
            klass = int(np.frombuffer(heap.space.view()[end + 6:end + 8].tobytes(), dtype="<u2")[0])
            assert klass == CLASS_FILLER, f"seed {seed}: no filler at the old generation's end"
    assert cases > 0  # the seeds do reach the case the test is named for
