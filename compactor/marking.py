"""Marking: the objects reachable from the roots, and ART's live-words bitmap with live bytes per 512-byte chunk.
A young collection (generational CMC) marks from the roots and the old objects on dirty cards, never entering the
old generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Protocol

import numpy as np
import numpy.typing as npt

from . import _native
from .layout import CHUNK_SIZE, popcount64

if TYPE_CHECKING:
    from .heap import Heap


class ReferenceGraph(Protocol):
    """What mark_reachable reads: a Heap, or heap._GraphView for a graph that is not (yet) a Heap."""

    @property
    def num_objects(self) -> int: ...
    @property
    def roots(self) -> npt.NDArray[np.integer[Any]]: ...  # object indices, -1 = null
    @property
    def ref_start(self) -> npt.NDArray[np.integer[Any]]: ...  # count + 1 entries
    @property
    def num_refs(self) -> npt.NDArray[np.integer[Any]]: ...
    @property
    def refs(self) -> npt.NDArray[np.integer[Any]]: ...  # object indices, -1 = null


@dataclass
class MarkResult:
    live: npt.NDArray[np.bool_]         # bool per object
    live_words: npt.NDArray[np.uint64]  # uint64 per 512-byte chunk: bit b of word c = 8-byte word 64*c + b is live
    chunk_live_bytes: npt.NDArray[np.int64]  # int64 per chunk
    live_bytes: int
    live_objects: int
    # A young collection: "young"; ``live`` and the bitmap then hold the marked objects of the mid and young
    # generations and the old objects on dirty cards (``card_objects``: scanned as roots, and the only old objects
    # compaction updates, their bytes counted in ``live_bytes``).
    kind: str = "full"
    card_objects: Optional[npt.NDArray[np.bool_]] = None
    dirty_cards: int = 0

    @property
    def scanned_bytes(self) -> int:
        """ART's YoungGcScannedBytes / FullGcScannedBytes: the marked bytes (a young collection's card objects
        included)."""
        return self.live_bytes


def mark_reachable(heap: ReferenceGraph, roots: Optional[npt.ArrayLike] = None,
                   premarked: Optional[npt.NDArray[np.bool_]] = None) -> npt.NDArray[np.bool_]:
    """The objects reachable from the roots (``roots``: object indices other than the heap's), never entering
    ``premarked`` objects (which count as reached): one breadth-first pass in the native core, level by level with
    a visited bit per object, large levels expanded in ascending object order so that the reference table is
    read in forward sweeps (GIL released); linear in the reachable objects and their references."""
    return _native.mark_reachable(np.ascontiguousarray(heap.ref_start, dtype=np.uint64),
                                  np.ascontiguousarray(heap.refs, dtype=np.int32),
                                  np.ascontiguousarray(heap.roots if roots is None else roots, dtype=np.int32),
                                  premarked=premarked)


def live_words_bitmap(heap: Heap, live: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint64]:
    """One bit per live 8-byte word, one uint64 per 512-byte chunk (bit b of word c = 8-byte word 64*c + b)."""
    return _native.live_words_bitmap(heap.heap_size, heap.offset, heap.size, np.ascontiguousarray(live, dtype=bool))


KINDS = ("full", "young")


def mark(heap: Heap, kind: str = "full") -> MarkResult:
    """Marks ``heap`` for a ``kind`` collection: "full" traces everything reachable from the roots; "young" (a
    generational heap) traces from the roots and from the references of the old objects on dirty cards, and never
    enters the old generation (its objects count as marked already)."""
    if kind not in KINDS:
        raise ValueError(f"unknown collection kind {kind!r}: choose full or young")
    if kind == "young":
        return _mark_young(heap)
    return _result(heap, mark_reachable(heap))


def _result(heap: Heap, live: npt.NDArray[np.bool_], **young: Any) -> MarkResult:
    """The marking of ``live``: its live-words bitmap and the live bytes per chunk and in all."""
    bitmap = live_words_bitmap(heap, live)
    assert bitmap.size == heap.heap_size // CHUNK_SIZE
    chunk_live = popcount64(bitmap) * 8
    return MarkResult(live=live, live_words=bitmap, chunk_live_bytes=chunk_live, live_bytes=int(chunk_live.sum()),
                      live_objects=int(live.sum()), **young)


def _mark_young(heap: Heap) -> MarkResult:
    from .generations import card_objects

    g = heap.generations
    if g is None:
        raise ValueError("a young collection needs a generational heap: HeapSpec(old_fraction=...) or "
                         "compactor.generations.after_collection()")
    old = heap.offset.astype(np.int64) < g.old_end
    cards = card_objects(heap)
    slot_of_card_object = np.repeat(cards, heap.num_refs.astype(np.int64))
    from_cards = heap.refs[slot_of_card_object]
    reached = mark_reachable(heap, np.concatenate([heap.roots, from_cards[from_cards >= 0]]), premarked=old)
    return _result(heap, (reached & ~old) | cards, kind="young", card_objects=cards,
                   dirty_cards=int(g.dirty_cards.sum()))
