"""The plan file: one self-contained file with the heap (object table and roots), the plan arrays and the expected
verification digest, so that the native runner on a device executes exactly this plan. Format: docs/plan-file.md.
Written here; read (and validated field by field) by the native core, for Python and the runner alike. This module
knows the format only: planning.Plan.save/load build on it (no import back)."""

from __future__ import annotations

import json
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


def write_plan_file(plan, path) -> None:
    """Writes ``plan`` (a planning.Plan, and its heap) to ``path`` atomically: a temporary file renamed into place.
    A heap loaded from a plan file keeps that file's description and seed, so a loaded plan saves byte-identical."""
    heap = plan.heap
    digest = plan.expected_digest if plan.expected_digest is not None else heap.pristine_digest()[0]
    origin = heap.origin or {}
    desc = origin["description"].encode() if "description" in origin else json.dumps(heap.describe()).encode()
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
    seed = origin.get("seed", heap.spec.seed if heap.spec is not None else 0)
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


def read_plan_file(path) -> dict:
    """The fields and arrays of a plan file, read and validated by the native core (raises PlanFileError naming the
    problem). planning.Plan.load rebuilds the plan and its heap from them."""
    return _native.load_plan_file(os.fspath(path))
