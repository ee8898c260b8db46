"""The plan file: one self-contained file with the heap (object table and roots), the plan arrays and the expected
verification digest, so that the native runner on a device executes exactly this plan. Format: docs/plan-file.md.
Written here; read (and validated field by field) by the native core, for Python and the runner alike."""

from __future__ import annotations

import os
import struct
import tempfile

import numpy as np

from . import _native

MAGIC = b"CMPCTPLN"
VERSION = 1
HEADER_SIZE = 96
SECTION_ENTRY = 24
# id: (name, dtype)
SECTIONS = {
    1: ("offset", "<u4"), 2: ("size", "<u4"), 3: ("num_refs", "<u2"), 4: ("identity", "<u8"), 5: ("refs", "<i4"),
    6: ("roots", "<i4"), 7: ("live_words", "<u8"), 8: ("chunk_offset", "<u4"), 9: ("first_obj", "<u4"),
    10: ("first_obj_header", "<u8"), 11: ("pre_compact_offset", "<u4"), 12: ("description", "u1"),
}


def save_plan(plan, path) -> None:
    """Writes ``plan`` (and its heap) to ``path`` atomically: a temporary file renamed into place."""
    import json

    heap = plan.heap
    digest = plan.expected_digest if plan.expected_digest is not None else heap.pristine_digest()[0]
    desc = json.dumps(heap.describe()).encode()
    arrays = {
        "offset": heap.offset, "size": heap.size, "num_refs": heap.num_refs, "identity": heap.identity,
        "refs": heap.refs, "roots": heap.roots, "live_words": plan.live_words, "chunk_offset": plan.chunk_offset,
        "first_obj": plan.first_obj, "first_obj_header": plan.first_obj_header,
        "pre_compact_offset": plan.pre_compact_offset, "description": np.frombuffer(desc, dtype=np.uint8),
    }
    nsec = len(SECTIONS)
    offset = HEADER_SIZE + nsec * SECTION_ENTRY
    table = b""
    blobs = []
    for sid, (name, dtype) in SECTIONS.items():
        a = np.ascontiguousarray(arrays[name], dtype=dtype)
        offset = -(-offset // 8) * 8
        table += struct.pack("<IIQQ", sid, a.dtype.itemsize, a.size, offset)
        blobs.append((offset, a.tobytes()))
        offset += a.nbytes
    file_size = offset
    seed = heap.spec.seed if heap.spec is not None else 0
    header = struct.pack("<8sIIQQQQQQQQIIQ", MAGIC, VERSION, HEADER_SIZE, heap.heap_size, plan.page_size,
                         plan.dense_prefix_pages, plan.slide_begin, plan.post_compact_end, plan.live_bytes,
                         digest, seed, nsec, 0, file_size)
    assert len(header) == HEADER_SIZE
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".plan-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + table)
            pos = HEADER_SIZE + len(table)
            for off, blob in blobs:
                f.write(b"\0" * (off - pos))
                f.write(blob)
                pos = off + len(blob)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_plan(path):
    """Reads a plan file (validated by the native core: raises PlanFileError naming the problem) and rebuilds the
    heap it carries."""
    from .heap import Heap
    from .planning import Plan

    d = _native.load_plan_file(os.fspath(path))
    heap = Heap(d["heap_size"], d["offset"], d["size"], d["num_refs"], d["identity"], d["refs"], d["roots"])
    live = np.zeros(heap.count, dtype=bool)  # recovered from the bitmap: an object is live when its first word is
    if heap.count:
        w = heap.offset.astype(np.int64) // 8
        live = ((d["live_words"][w // 64] >> (w % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)
    p = Plan(heap=heap, page_size=d["page_size"], live=live, live_words=d["live_words"],
             chunk_offset=d["chunk_offset"], first_obj=d["first_obj"], first_obj_header=d["first_obj_header"],
             pre_compact_offset=d["pre_compact_offset"], dense_prefix_pages=d["dense_prefix_pages"],
             slide_begin=d["slide_begin"], post_compact_end=d["post_compact_end"], live_bytes=d["live_bytes"],
             expected_digest=d["expected_digest"])
    p.description = d["description"]
    return p
