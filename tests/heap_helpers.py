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
    return compactor.Heap(heap_size, offset, sizes, nrefs, identity_of(np.arange(n), 0x1234), np.asarray(flat, np.int64),
                          np.asarray(roots, np.int64))


def brute_force(heap, live, page_size):
    """(slide_begin, post-compact offsets of live objects, dense pages) by walking objects one by one."""
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
    while dense < pages and page_live[dense] >= 0.95 * page_size:
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
