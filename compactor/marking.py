"""Marking: the objects reachable from the roots, and ART's live-words bitmap with live bytes per 512-byte chunk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

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


def mark_reachable(heap: ReferenceGraph) -> npt.NDArray[np.bool_]:
    """Breadth-first marking over the reference graph, one frontier at a time (vectorized)."""
    n = heap.num_objects
    marked = np.zeros(n, dtype=bool)
    frontier = np.unique(heap.roots[heap.roots >= 0]).astype(np.int64)
    marked[frontier] = True
    ref_start = heap.ref_start.astype(np.int64)
    num_refs = heap.num_refs.astype(np.int64)
    while frontier.size:
        counts = num_refs[frontier]
        total = int(counts.sum())
        if total == 0:
            break
        first = ref_start[frontier]
        pos = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(total, dtype=np.int64)
        targets = heap.refs[pos]
        targets = targets[targets >= 0]
        targets = targets[~marked[targets]]
        frontier = np.unique(targets).astype(np.int64)
        marked[frontier] = True
    return marked


def live_words_bitmap(heap: Heap, live: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint64]:
    """One bit per live 8-byte word, packed little-endian into one uint64 per 512-byte chunk."""
    words = heap.heap_size // 8
    start = heap.offset[live].astype(np.int64) // 8
    end = start + heap.size[live].astype(np.int64) // 8
    delta = np.zeros(words + 1, dtype=np.int8)
    delta[start] += 1
    delta[end] -= 1
    bits = np.cumsum(delta[:-1], dtype=np.int8).view(np.bool_)
    packed = np.packbits(bits, bitorder="little")
    pad = (-packed.size) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros(pad, dtype=np.uint8)])
    return packed.view("<u8").astype(np.uint64, copy=False)


def mark(heap: Heap) -> MarkResult:
    live = mark_reachable(heap)
    bitmap = live_words_bitmap(heap, live)
    assert bitmap.size == heap.heap_size // CHUNK_SIZE
    chunk_live = popcount64(bitmap) * 8
    return MarkResult(live=live, live_words=bitmap, chunk_live_bytes=chunk_live,
                      live_bytes=int(chunk_live.sum()), live_objects=int(live.sum()))
