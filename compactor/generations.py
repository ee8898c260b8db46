"""Generations, as ART 16's generational CMC keeps them: the moving space is ``[0, old_end)`` old generation,
``[old_end, mid_end)`` mid generation (survived one collection), ``[mid_end, used_end)`` young generation, and
``[used_end, heap_size)`` free; a card table of ``CARD_SIZE``-byte cards over the old generation, a card dirty
when the write barrier saw a reference store into an object starting on it.

This module generates generational heaps (``HeapSpec(old_fraction=..., mid_fraction=..., young_survival=...)``),
says which old objects a young collection scans as roots (those on dirty cards), builds the heap a collection leaves
for the next one (``after_collection``: ART's FinishPhase promotion, ``old_end = mid_end; mid_end =
post_compact_end``), and runs an epoch of app activity between collections (``mutate``: allocation, reference
stores that dirty cards, roots dropped and taken). The heap a collection leaves is rebuilt as a table (the model),
so every collection of a sequence starts from a table and verifies against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional

import numpy as np
import numpy.typing as npt

from .layout import MIN_OBJECT_SIZE, identity_of, max_refs

if TYPE_CHECKING:
    from .heap import Heap, HeapSpec
    from .planning import Plan

CARD_SIZE = 1024  # bytes per card (ART's gc::accounting::CardTable::kCardShift = 10)
OLD, MID, YOUNG = 0, 1, 2


@dataclass(frozen=True)
class Generations:
    """Where the generations end (byte offsets, object boundaries, 8-aligned) and the dirty cards: one bool per
    card of ``[0, old_end)`` (card i covers ``[i * CARD_SIZE, (i + 1) * CARD_SIZE)``)."""

    old_end: int
    mid_end: int
    dirty_cards: npt.NDArray[np.bool_]

    def to_dict(self) -> Dict[str, Any]:
        return {"old_end": self.old_end, "mid_end": self.mid_end, "cards": int(self.dirty_cards.size),
                "dirty_cards": int(self.dirty_cards.sum())}


def num_cards(old_end: int) -> int:
    return -(-old_end // CARD_SIZE)


def generation_of(heap: "Heap") -> npt.NDArray[np.int8]:
    """OLD, MID or YOUNG per object, by where it starts."""
    g = heap.generations
    assert g is not None
    off = heap.offset.astype(np.int64)
    return np.where(off < g.old_end, OLD, np.where(off < g.mid_end, MID, YOUNG)).astype(np.int8)


def card_objects(heap: "Heap") -> npt.NDArray[np.bool_]:
    """Per object: an old object starting on a dirty card (a young collection scans it as a root and updates it)."""
    g = heap.generations
    assert g is not None
    off = heap.offset.astype(np.int64)
    old = off < g.old_end
    on_dirty = np.zeros(off.size, dtype=bool)
    on_dirty[old] = g.dirty_cards[off[old] // CARD_SIZE]
    return on_dirty


def exact_dirty_cards(offset: npt.NDArray[np.integer[Any]], num_refs: npt.NDArray[np.integer[Any]],
                      refs: npt.NDArray[np.integer[Any]], old_end: int) -> npt.NDArray[np.bool_]:
    """The cards a precise write barrier leaves dirty: those of the old objects holding a reference to an object
    that is not old."""
    off = offset.astype(np.int64)
    owner = np.repeat(np.arange(off.size), num_refs.astype(np.int64))
    target_off = np.where(refs >= 0, off[np.maximum(refs, 0)], -1)
    young_ref = (off[owner] < old_end) & (target_off >= old_end)
    cards = np.zeros(num_cards(old_end), dtype=bool)
    cards[off[owner[young_ref]] // CARD_SIZE] = True
    return cards


def add_stale_cards(cards: npt.NDArray[np.bool_], share: float, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Dirties ``share`` of the clean cards: stores whose referent has since become old again, or was overwritten
    (a real barrier leaves those cards dirty until the next collection scans them)."""
    out: npt.NDArray[np.bool_] = cards.copy()
    clean = np.flatnonzero(~out)
    if clean.size and share > 0:
        out[rng.choice(clean, size=int(round(share * clean.size)), replace=False)] = True
    return out


def _tile(sizes_of: Any, rng: np.random.Generator, nbytes: int) -> npt.NDArray[np.int64]:
    """Object sizes filling exactly ``nbytes`` (a multiple of 8): drawn, then the last one cut or stretched."""
    if nbytes <= 0:
        return np.zeros(0, dtype=np.int64)
    out = []
    total = 0
    while total < nbytes:
        s = sizes_of(rng, max(64, nbytes // 100))
        out.append(s)
        total += int(s.sum())
    sizes = np.concatenate(out)
    ends = np.cumsum(sizes)
    n = int(np.searchsorted(ends, nbytes, side="right"))
    sizes = sizes[:n].copy()
    rest = nbytes - (int(ends[n - 1]) if n else 0)
    if rest >= MIN_OBJECT_SIZE or n == 0:
        sizes = np.append(sizes, rest)
    elif rest:
        sizes[-1] += rest
    return sizes


def _tree(rng: np.random.Generator, members: npt.NDArray[np.int64], nrefs: npt.NDArray[np.int64],
          ref_start: npt.NDArray[np.int64], refs: npt.NDArray[np.int64], tree_slot: npt.NDArray[np.bool_],
          min_tops: int) -> npt.NDArray[np.int64]:
    """Hangs ``members`` in a random tree over their own reference slots (holders first, each child in a slot of
    an earlier member), writing ``refs`` and marking ``tree_slot``; returns the tops (no parent: roots or held
    from elsewhere)."""
    if members.size == 0:
        return members
    holders = members[nrefs[members] > 0]
    others = members[nrefs[members] == 0]
    order = np.concatenate([rng.permutation(holders), rng.permutation(others)])
    total_slots = int(nrefs[holders].sum())
    n_tops = min(order.size, max(min_tops, order.size - total_slots))
    children = order[n_tops:]
    if children.size:
        hold = order[: holders.size]
        counts = nrefs[hold]
        slot_pos = np.repeat(ref_start[hold] - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        refs[slot_pos[: children.size]] = children
        tree_slot[slot_pos[: children.size]] = True
    return order[:n_tops]


def generate(spec: "HeapSpec", page_size: int) -> "Heap":
    """A generational heap for ``spec`` (old_fraction > 0): an old generation at the bottom (``old_live`` of it
    live, as after earlier collections), a mid and a young generation above it (``mid_survival`` and
    ``young_survival`` of their objects reachable), each reachable part a random tree from roots; a share
    ``old_to_young`` of the young trees hangs off old objects, not roots (reachable only through a dirty card);
    references between generations elsewhere (young to old freely; old to old); and the card table: exactly the
    old objects holding a reference to a younger object, plus ``stale_cards`` of the clean cards."""
    from .heap import Heap, _sample_sizes, ref_counts

    rng = np.random.default_rng(spec.seed)
    heap_size = -(-spec.size // page_size) * page_size

    def sizes_of(r: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
        return _sample_sizes(spec, r, n)

    old_bytes = int(spec.old_fraction * heap_size) // 8 * 8
    mid_bytes = int(spec.mid_fraction * heap_size) // 8 * 8
    sizes = np.concatenate([_tile(sizes_of, rng, old_bytes), _tile(sizes_of, rng, mid_bytes),
                            _tile(sizes_of, rng, heap_size - old_bytes - mid_bytes)])
    n = sizes.size
    offset = np.cumsum(sizes) - sizes
    old_end, mid_end = old_bytes, old_bytes + mid_bytes
    gen = np.where(offset < old_end, OLD, np.where(offset < mid_end, MID, YOUNG))
    nrefs = ref_counts(spec, rng, sizes)
    share = np.choose(gen, [spec.old_live, spec.mid_survival, spec.young_survival])
    live = rng.random(n) < share
    ref_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nrefs, out=ref_start[1:])
    total = int(ref_start[-1])
    owner = np.repeat(np.arange(n), nrefs)
    # Default targets: an old object (live or dead) points at old objects of its own kind; a younger one anywhere
    # live; 10% null.
    old_idx = np.flatnonzero(gen == OLD)
    old_live = np.flatnonzero(live & (gen == OLD))
    live_idx = np.flatnonzero(live)
    refs = rng.integers(0, max(n, 1), total, dtype=np.int64)
    owner_old = gen[owner] == OLD
    if old_idx.size:
        refs[owner_old] = old_idx[rng.integers(0, old_idx.size, int(owner_old.sum()))]
    if old_live.size:
        o = owner_old & live[owner]
        refs[o] = old_live[rng.integers(0, old_live.size, int(o.sum()))]
    if live_idx.size:
        y = ~owner_old & live[owner]
        refs[y] = live_idx[rng.integers(0, live_idx.size, int(y.sum()))]
    refs[rng.random(total) < 0.1] = -1
    tree_slot = np.zeros(total, dtype=bool)
    young_share = float((gen[live] != OLD).mean()) if live.any() else 0.0
    old_tops = _tree(rng, old_live, nrefs, ref_start, refs, tree_slot, max(1, int(spec.roots * (1 - young_share))))
    young_tops = _tree(rng, np.flatnonzero(live & (gen != OLD)), nrefs, ref_start, refs, tree_slot,
                       max(1, int(spec.roots * young_share)))
    # Some young trees hang off old objects: a free (non-tree) slot of a live old object, a dirty card.
    held = young_tops[rng.random(young_tops.size) < spec.old_to_young]
    free = np.flatnonzero(~tree_slot & owner_old & live[owner])
    held = held[: free.size]
    if held.size:
        slots = rng.choice(free, size=held.size, replace=False)
        refs[slots] = held
        tree_slot[slots] = True
        young_tops = np.setdiff1d(young_tops, held)
    roots = rng.permutation(np.concatenate([old_tops, young_tops]))
    if roots.size < spec.roots and live_idx.size:
        roots = np.concatenate([roots, live_idx[rng.integers(0, live_idx.size, spec.roots - roots.size)]])
    cards = add_stale_cards(exact_dirty_cards(offset, nrefs, refs, old_end), spec.stale_cards, rng)
    tag = (spec.seed * 0x9E3779B1 + 0x47454E53) & 0xFFFFFFFF or 1
    identity = identity_of(np.arange(n, dtype=np.uint64), tag)
    heap = Heap(heap_size, offset, sizes, nrefs, identity, refs, roots, spec=spec)
    heap.generations = Generations(old_end, mid_end, cards)
    return heap


def after_collection(plan: "Plan", *, seed: int = 0, stale_cards: float = 0.0) -> "Heap":
    """The heap ``plan``'s collection leaves, as the next collection's input (a new table): objects below the
    plan's slide begin stay where they are (live or dead: the old generation, the dense prefix), the survivors
    above it at their post-compact offsets; references to objects that did not survive become null (only dead
    objects held them). Promotion as ART's FinishPhase does it: the mid generation's survivors join the old one
    (``old_end`` = the post-compact end of the old and mid generations), the young ones become the mid generation
    (``mid_end`` = the post-compact end), the young generation is empty. The cards are the exact ones (old objects
    still holding a younger reference stay dirty: ART keeps them as aged cards), plus ``stale_cards`` of the rest.
    A heap without generations gets them here: everything below the post-compact end is mid."""
    from .heap import Heap

    heap = plan.heap
    off = heap.offset.astype(np.int64)
    kept = (off < plan.slide_begin) | plan.live
    new_index = np.full(heap.num_objects, -1, dtype=np.int64)
    order = np.flatnonzero(kept)  # address order is kept: the sliding region keeps the survivors' order
    new_index[order] = np.arange(order.size)
    new_off = np.where(off[order] < plan.slide_begin, off[order], plan.post_compact_offsets(order))
    sizes = heap.size[order].astype(np.int64)
    nrefs = heap.num_refs[order].astype(np.int64)
    # A dead object straddling the slide begin lost its tail to the sliding survivors (the dense walk left a filler
    # up to the page boundary): it is cut there; a cut of 8 bytes (no room for an object) joins the object before.
    cut = np.flatnonzero((off[order] < plan.slide_begin) & (off[order] + sizes > plan.slide_begin))
    for i in cut.tolist():
        sizes[i] = plan.slide_begin - off[order][i]
        nrefs[i] = min(int(nrefs[i]), int(max_refs(int(sizes[i])))) if sizes[i] >= MIN_OBJECT_SIZE else 0
        if sizes[i] < MIN_OBJECT_SIZE and i > 0:
            sizes[i - 1] += sizes[i]
            sizes[i] = 0
    starts = heap.ref_start[order].astype(np.int64)  # each object's first nrefs slots (a cut object keeps its first)
    pos = np.repeat(starts - np.cumsum(nrefs) + nrefs, nrefs) + np.arange(int(nrefs.sum()))
    old_refs = heap.refs[pos].astype(np.int64)
    refs = np.where(old_refs >= 0, new_index[np.maximum(old_refs, 0)], -1)
    roots = heap.roots.astype(np.int64)
    roots = np.where(roots >= 0, new_index[np.maximum(roots, 0)], -1)
    g = heap.generations
    old_end = 0  # without generations: everything below the post-compact end is mid
    if g is not None:
        above = off[order] >= g.mid_end  # the young generation's survivors
        old_end = int(new_off[above].min()) if above.any() else plan.post_compact_end
    mid_end = plan.post_compact_end
    gone = sizes == 0  # an 8-byte cut joined its predecessor
    if gone.any():
        slot_gone = np.repeat(gone, nrefs)
        remap = np.cumsum(~gone) - 1
        refs = np.where(refs >= 0, np.where(gone[np.maximum(refs, 0)], -1, remap[np.maximum(refs, 0)]), -1)[~slot_gone]
        roots = np.where(roots >= 0, np.where(gone[np.maximum(roots, 0)], -1, remap[np.maximum(roots, 0)]), -1)
        new_off, sizes, nrefs, order = new_off[~gone], sizes[~gone], nrefs[~gone], order[~gone]
    out = Heap(heap.heap_size, new_off, sizes, nrefs, heap.identity[order], refs, roots, spec=heap.spec,
               origin={"after": f"{plan.kind} collection"})
    rng = np.random.default_rng(seed)
    cards = add_stale_cards(exact_dirty_cards(out.offset, out.num_refs, out.refs, old_end), stale_cards, rng)
    out.generations = Generations(old_end, mid_end, cards)
    return out


def mutate(heap: "Heap", *, alloc_bytes: int, young_survival: float = 0.1, root_turnover: float = 0.2,
           old_stores: int = 64, stale_cards: float = 0.02, seed: int = 0, tag: int = 1) -> "Heap":
    """One epoch of app activity between collections: ``alloc_bytes`` of new objects bump-allocated from the used
    end (as far as the space allows), ``young_survival`` of them kept reachable from new roots (a tree) that replace
    ``root_turnover`` of the old roots (what those held may die), ``old_stores`` reference stores of new objects
    into old objects (their cards dirtied, as the write barrier does), and ``stale_cards`` of the clean cards
    dirtied by stores since overwritten. Returns the new heap (a new table; identities of new objects from
    ``tag``)."""
    from .heap import Heap, HeapSpec, _sample_sizes

    g = heap.generations
    if g is None:
        raise ValueError("mutate() needs a generational heap (HeapSpec(old_fraction=...) or after_collection())")
    rng = np.random.default_rng(seed)
    spec = heap.spec if heap.spec is not None else HeapSpec(size=heap.heap_size)
    used = heap.used_end
    room = (heap.heap_size - used) // 8 * 8
    nbytes = min(alloc_bytes // 8 * 8, room)

    def sizes_of(r: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
        return _sample_sizes(spec, r, n)

    sizes_new = _tile(sizes_of, rng, nbytes) if nbytes >= MIN_OBJECT_SIZE else np.zeros(0, dtype=np.int64)
    m = sizes_new.size
    n0 = heap.num_objects
    nrefs_new = np.minimum(max_refs(sizes_new), rng.poisson(spec.refs_per_object, m)).astype(np.int64)
    nrefs_new[sizes_new > 256] = 0
    off_new = used + np.cumsum(sizes_new) - sizes_new
    nrefs = np.concatenate([heap.num_refs.astype(np.int64), nrefs_new])
    ref_start = np.zeros(n0 + m + 1, dtype=np.int64)
    np.cumsum(nrefs, out=ref_start[1:])
    refs = np.concatenate([heap.refs.astype(np.int64), np.full(int(nrefs_new.sum()), -1, dtype=np.int64)])
    tree_slot = np.zeros(refs.size, dtype=bool)
    new_idx = n0 + np.arange(m)
    alive = new_idx[rng.random(m) < young_survival]
    # New objects' other slots: random objects that were reachable (a cheap stand-in: any object), or null.
    new_slots = np.arange(int(ref_start[n0]), refs.size)
    if new_slots.size and n0 + m:
        refs[new_slots] = np.where(rng.random(new_slots.size) < 0.5, rng.integers(0, n0 + m, new_slots.size), -1)
    tops = _tree(rng, alive, nrefs, ref_start, refs, tree_slot, max(1, int(heap.roots.size * root_turnover)))
    roots = heap.roots.astype(np.int64).copy()
    if roots.size and tops.size:
        replace = rng.choice(roots.size, size=min(tops.size, int(roots.size * root_turnover) or 1), replace=False)
        roots[replace] = tops[: replace.size]
    # Reference stores into old objects: a slot of a random old object now holds a new object (card dirtied).
    offset = np.concatenate([heap.offset.astype(np.int64), off_new])
    old_holders = np.flatnonzero((heap.offset.astype(np.int64) < g.old_end) & (heap.num_refs > 0))
    if old_holders.size and m and old_stores:
        who = rng.choice(old_holders, size=min(old_stores, old_holders.size), replace=False)
        slot = ref_start[who] + rng.integers(0, nrefs[who])
        refs[slot] = new_idx[rng.integers(0, m, who.size)]
    sizes = np.concatenate([heap.size.astype(np.int64), sizes_new])
    identity = np.concatenate([heap.identity, identity_of(np.arange(m, dtype=np.uint64), tag)])
    out = Heap(heap.heap_size, offset, sizes, nrefs, identity, refs, roots, spec=heap.spec,
               origin={"after": "app activity", "allocated_bytes": int(sizes_new.sum())})
    cards = add_stale_cards(exact_dirty_cards(out.offset, out.num_refs, out.refs, g.old_end) | g.dirty_cards,
                            stale_cards, rng)
    out.generations = Generations(g.old_end, g.mid_end, cards)
    return out


def describe(heap: "Heap") -> Optional[Dict[str, Any]]:
    """The generations' bytes and objects, live or not, and the dirty cards (None for a single-generation heap)."""
    g = heap.generations
    if g is None:
        return None
    gen = generation_of(heap)
    d = g.to_dict()
    for k, name in ((OLD, "old"), (MID, "mid"), (YOUNG, "young")):
        d[f"{name}_objects"] = int((gen == k).sum())
        d[f"{name}_bytes"] = int(heap.size[gen == k].sum())
    d["card_objects"] = int(card_objects(heap).sum())
    return d
