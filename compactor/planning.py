"""Compaction planning, after ART's PrepareForCompaction: chunk offsets by exclusive prefix sum, post-compact
addresses by popcount, per to-space page the first object and the pre-compact offset where copying starts, the
post-compact end, and the black-dense prefix (leading pages at least 95% live are updated in place, not slid).
A young collection's plan (generational CMC) compacts the mid and young generations only: the old generation and
the page it ends on are its dense prefix, and ``old_gen_end`` tells the core which of it is old (updated only where
an object starts on a dirty card: its live-words bits).

The native core executes the arrays produced here; it never re-plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np
import numpy.typing as npt

from . import _native
from .heap import Heap, StrPath
from .layout import BYTE_POPCOUNT, CHUNK_SIZE, CLASS_OBJECT, pack_header, popcount64
from .marking import MarkResult, mark
from .planfile import read_plan_file, write_plan_file

_NativePlan = _native.Plan  # the field Plan._native shadows the module name inside the class

DENSE_THRESHOLD = 0.95

# Bit selection by bytes: the set bits of each byte value, and the position of its r-th set bit (r < 8).
_BYTE_SELECT = np.array([[([i for i in range(8) if b >> i & 1] + [0] * 8)[r] for r in range(8)] for b in range(256)],
                        dtype=np.int64)


def select_bit(words: npt.NDArray[np.uint64], k: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The position (0..63) of the (k+1)-th set bit of each word (each word has more than k set bits): the byte
    that holds it from the bytes' running popcounts, then a table within that byte."""
    b = np.ascontiguousarray(words, dtype="<u8").view(np.uint8).reshape(-1, 8)
    counts = BYTE_POPCOUNT[b]
    running = np.cumsum(counts, axis=1, dtype=np.uint8)
    byte = np.argmax(running > k.astype(np.uint8)[:, None], axis=1)
    rows = np.arange(b.shape[0])
    rank_in_byte = k - (running[rows, byte] - counts[rows, byte]).astype(np.int64)
    selected: npt.NDArray[np.int64] = byte * 8 + _BYTE_SELECT[b[rows, byte], rank_in_byte]
    return selected


@dataclass
class Plan:
    """A compaction plan for one heap. Arrays are numpy; ``native`` is the validated native form."""

    heap: Heap
    page_size: int
    live: npt.NDArray[np.bool_]                 # bool per object (the marking result)
    live_words: npt.NDArray[np.uint64]          # uint64 per chunk
    chunk_offset: npt.NDArray[np.uint32]        # uint32 per chunk: post-compact offset of the chunk's first live word
    first_obj: npt.NDArray[np.uint32]           # uint32 per to-space page
    first_obj_header: npt.NDArray[np.uint64]    # uint64 per to-space page
    pre_compact_offset: npt.NDArray[np.uint32]  # uint32 per to-space page
    dense_prefix_pages: int
    slide_begin: int
    post_compact_end: int
    live_bytes: int
    expected_digest: Optional[int] = None
    kind: str = "full"      # "young": a young collection's plan (compactor.generations)
    old_gen_end: int = 0    # young: the old generation's end; 0 for a full collection
    marking: Optional[MarkResult] = field(default=None, repr=False)
    _native: Optional[_NativePlan] = field(default=None, repr=False)

    @property
    def heap_size(self) -> int:
        return self.heap.heap_size

    @property
    def num_to_pages(self) -> int:
        return int(self.first_obj.size)

    @property
    def native(self) -> _NativePlan:
        if self._native is None:
            self._native = _native.Plan(self.heap_size, self.page_size, self.live_words, self.chunk_offset,
                                        self.first_obj, self.first_obj_header, self.pre_compact_offset,
                                        self.dense_prefix_pages, self.slide_begin, self.post_compact_end,
                                        self.live_bytes, self.old_gen_end)
        return self._native

    def post_compact_offsets(self, objects: Optional[npt.NDArray[np.integer[Any]]] = None
                             ) -> npt.NDArray[np.int64]:
        """ART's formula for the given live objects (default: all live objects, in address order)."""
        if objects is None:
            objects = np.flatnonzero(self.live)
        x = self.heap.offset[objects].astype(np.int64)
        w = x // 8
        c = w // 64
        below = self.live_words[c] & ((np.uint64(1) << (w % 64).astype(np.uint64)) - np.uint64(1))
        slid = self.chunk_offset[c].astype(np.int64) + 8 * popcount64(below)
        return np.where(x < self.slide_begin, x, slid)

    def save(self, path: StrPath) -> None:
        """Writes this plan and its heap to one self-contained plan file (docs/plan-file.md), atomically. A plan
        loaded from a file is saved byte for byte as it was read."""
        write_plan_file(self, path)

    @staticmethod
    def load(path: StrPath) -> "Plan":
        """Reads a plan file (validated field by field by the native core: PlanFileError names the problem) and
        rebuilds the heap it carries, keeping the file's description and seed."""
        d = read_plan_file(path)
        heap = Heap(d["heap_size"], d["offset"], d["size"], d["num_refs"], d["identity"], d["refs"], d["roots"],
                    origin={"description": d["description"], "seed": d["seed"]})
        live = np.zeros(heap.num_objects, dtype=bool)  # from the bitmap: an object is live when its first word is
        if heap.num_objects:
            w = heap.offset.astype(np.int64) // 8
            live = ((d["live_words"][w // 64] >> (w % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)
        return Plan(heap=heap, page_size=d["page_size"], live=live, live_words=d["live_words"],
                    chunk_offset=d["chunk_offset"], first_obj=d["first_obj"], first_obj_header=d["first_obj_header"],
                    pre_compact_offset=d["pre_compact_offset"], dense_prefix_pages=d["dense_prefix_pages"],
                    slide_begin=d["slide_begin"], post_compact_end=d["post_compact_end"], live_bytes=d["live_bytes"],
                    expected_digest=d["expected_digest"], kind="young" if d["old_gen_end"] else "full",
                    old_gen_end=d["old_gen_end"])

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"page_size": self.page_size, "heap_bytes": self.heap_size, "live_bytes": self.live_bytes,
             "post_compact_end": self.post_compact_end, "to_space_pages": self.num_to_pages,
             "dense_prefix_pages": self.dense_prefix_pages, "slide_begin": self.slide_begin}
        if self.kind == "young":
            d.update(kind="young", old_gen_end=self.old_gen_end)
        return d


def plan(heap: Heap, page_size: Optional[int] = None, marking: Optional[MarkResult] = None,
         kind: Optional[str] = None) -> Plan:
    """Marks (unless ``marking`` is given) and plans the compaction of ``heap`` for pages of ``page_size`` bytes
    (default: this kernel's). ``kind``: "full" (the default) or "young" (a generational heap: the mid and young
    generations are compacted, the old generation stays in place; ``marking``'s kind when it is given)."""
    from .uffd import PAGE_SIZE

    ps = int(page_size or PAGE_SIZE)
    if ps < 4096 or ps & (ps - 1):
        raise ValueError(f"page_size must be a power of two >= 4096, got {ps}")
    if heap.heap_size % ps:
        raise ValueError(f"heap size {heap.heap_size} is not a multiple of the page size {ps}")
    kind = kind if kind is not None else (marking.kind if marking is not None else "full")
    m = marking if marking is not None else mark(heap, kind)
    if m.kind != kind:
        raise ValueError(f"a {m.kind} collection's marking cannot plan a {kind} collection")
    bitmap = m.live_words
    chunk_live = m.chunk_live_bytes
    chunks_per_page = ps // CHUNK_SIZE
    live_idx = np.flatnonzero(m.live)
    live_start = heap.offset[live_idx]  # uint32, as the offsets: searched with uint32 keys, never converted

    # Black-dense prefix: leading pages >= 95% live (only where the heap is tiled with objects, so that the
    # in-place update can walk every object, live or dead).
    old_gen_end = 0
    if kind == "young":  # the old generation and the page it ends on stay in place (ART: the black-dense prefix)
        assert heap.generations is not None  # mark() refused a heap without generations
        if not heap.tiled:  # the in-place walk of the old generation steps from object to object
            raise ValueError("a young collection needs a heap tiled with objects from 0 to its used end (as "
                             "generated, or as after_collection() and mutate() leave it)")
        old_gen_end = heap.generations.old_end
        dense_pages = min(-(-old_gen_end // ps), -(-heap.used_end // ps))
    else:
        page_live = chunk_live.reshape(-1, chunks_per_page).sum(axis=1)
        sparse = np.flatnonzero(page_live < DENSE_THRESHOLD * ps)
        dense_pages = int(sparse[0]) if sparse.size else int(page_live.size)
        dense_pages = min(dense_pages, heap.used_end // ps) if heap.tiled else 0
    dense_end = dense_pages * ps
    slide_begin = dense_end
    straddler = int(np.searchsorted(live_start, np.uint32(dense_end), side="left")) - 1 if dense_pages else -1
    straddler_end = int(live_start[straddler]) + int(heap.size[live_idx[straddler]]) if straddler >= 0 else 0
    if straddler_end > dense_end:
        slide_begin = straddler_end  # a live object straddling the boundary stays where it is

    # Chunk offsets: exclusive prefix sum of the live bytes at or above slide_begin.
    num_chunks = bitmap.size
    cb = slide_begin // CHUNK_SIZE
    below_bits = np.uint64((1 << ((slide_begin // 8) % 64)) - 1)
    counted = chunk_live.copy()
    counted[:cb] = 0
    below_cb = 0
    if cb < num_chunks:
        below_cb = int(popcount64(np.array([bitmap[cb] & below_bits]))[0]) * 8
        counted[cb] -= below_cb
    exclusive = np.concatenate([[0], np.cumsum(counted)[:-1]]) if num_chunks else np.zeros(0, np.int64)
    chunk_offset = slide_begin + exclusive
    if cb < num_chunks:
        chunk_offset[cb] -= below_cb
    chunk_offset[:cb] = np.arange(cb, dtype=np.int64) * CHUNK_SIZE  # unused below slide_begin
    post_compact_end = slide_begin + int(counted.sum())
    num_to_pages = -(-post_compact_end // ps)

    # Per to-space page: the byte landing at its start and the object covering it.
    page_start = np.arange(num_to_pages, dtype=np.int64) * ps
    pre = page_start.copy()
    obj_index = np.zeros(num_to_pages, dtype=np.int64)  # the object covering each page's first byte
    dense = page_start < dense_end
    if dense.any():  # in place: the object (live or dead) covering the page start
        obj_index[dense] = np.searchsorted(heap.offset, page_start[dense], side="right") - 1
    straddle = (~dense) & (page_start < slide_begin)
    if straddle.any():
        obj_index[straddle] = live_idx[straddler]
    sliding = page_start >= slide_begin
    if sliding.any():
        t = page_start[sliding]
        cs = slide_begin + exclusive  # post-compact offset of the first counted live word of each chunk
        ce = cs + counted
        c = np.searchsorted(ce, t, side="right")
        k = (t - cs[c]) // 8 + np.where(c == cb, below_cb // 8, 0)
        pos = select_bit(bitmap[c], k)  # (an int64 cumsum of unpacked bits here was half of planning at 3 GiB)
        x = (c * 64 + pos) * 8
        pre[sliding] = x
        obj_index[sliding] = live_idx[np.searchsorted(live_start, x.astype(np.uint32), side="right") - 1]
    first = heap.offset[obj_index].astype(np.int64)
    header = pack_header(heap.size[obj_index], heap.num_refs[obj_index], CLASS_OBJECT)

    return Plan(heap=heap, page_size=ps, live=m.live, live_words=bitmap,
                chunk_offset=chunk_offset.astype(np.uint32), first_obj=first.astype(np.uint32),
                first_obj_header=header.astype(np.uint64), pre_compact_offset=pre.astype(np.uint32),
                dense_prefix_pages=dense_pages, slide_begin=int(slide_begin), post_compact_end=int(post_compact_end),
                live_bytes=m.live_bytes, kind=kind, old_gen_end=old_gen_end, marking=m)
