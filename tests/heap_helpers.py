"""Hand-made heaps and a brute-force reference planner for the planner tests."""

from __future__ import annotations

import numpy as np

import compactor
from compactor.layout import identity_of


def make_heap(sizes, live, heap_size, page_size=4096, refs=None, nrefs=None, roots=None):
    """Tiles objects of `sizes` from offset 0; objects with live[i] are made reachable (each a root unless
    `roots` is given); `refs`: {object: [targets]}."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n = sizes.size
    offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if n else np.zeros(0, np.int64)
    nrefs = np.zeros(n, np.int64) if nrefs is None else np.asarray(nrefs, np.int64)
    flat = []
    for i in range(n):
        t = list((refs or {}).get(i, []))
        t += [-1] * (nrefs[i] - len(t))
        flat += t
    if roots is None:
        roots = np.flatnonzero(np.asarray(live, bool))
    return compactor.Heap(heap_size, offset, sizes, nrefs, identity_of(np.arange(n), 0x1234),
                          np.asarray(flat, np.int64), np.asarray(roots, np.int64))


# ART's rule, written from art/runtime/gc/collector/mark_compact.cc (not imported from compactor.planning, so that a
# wrong rule there shows): `kBlackDenseRegionThreshold = 95U` percent, and a page is black-dense when its live bytes
# are at least `kBlackDenseRegionThreshold * gPageSize / 100` (integer arithmetic); the black-dense prefix is the
# longest run of such pages from the start of the moving space.
ART_BLACK_DENSE_REGION_THRESHOLD_PERCENT = 95


def brute_force(heap, live, page_size):
    """(slide_begin, post-compact offsets of live objects, dense pages, post-compact end) by walking objects one by
    one, with ART's rules (above), independently of compactor.planning."""
    live = np.asarray(live, bool)
    pages = heap.heap_size // page_size
    page_live = np.zeros(pages, np.int64)
    for i in np.flatnonzero(live):
        s, e = int(heap.offset[i]), int(heap.offset[i]) + int(heap.size[i])
        while s < e:
            p = s // page_size
            nxt = min(e, (p + 1) * page_size)
            page_live[p] += nxt - s
            s = nxt
    dense = 0
    threshold = ART_BLACK_DENSE_REGION_THRESHOLD_PERCENT * page_size // 100
    while dense < pages and page_live[dense] >= threshold:
        dense += 1
    dense = min(dense, heap.used_end // page_size) if heap.tiled else 0
    slide = dense * page_size
    for i in np.flatnonzero(live):
        s, e = int(heap.offset[i]), int(heap.offset[i]) + int(heap.size[i])
        if s < slide < e:
            slide = e
    pc, cursor = {}, slide
    for i in np.flatnonzero(live):
        s = int(heap.offset[i])
        if s < slide:
            pc[i] = s
        else:
            pc[i] = cursor
            cursor += int(heap.size[i])
    return slide, pc, dense, cursor
