"""HPROF heap dumps (Android's `am dumpheap`, Android Studio, `Debug.dumpHprofData`; a JVM's `jcmd GC.heap_dump`):
the object graph of the chosen heap(s), with real sizes and real references, for ``Heap.from_hprof``.

The parser is native (``_native.parse_hprof``): HPROF 1.0.2 and 1.0.3, 4- and 8-byte identifiers, every GC root
type, Android's HEAP_DUMP_INFO (app 'A' / zygote 'Z' / image 'I' heaps), roots 0x89-0x8E, UNREACHABLE 0x90 and
PRIMITIVE_ARRAY_NODATA 0xC3. Unknown record tags are skipped by their length; an unknown heap-dump sub-record, a
truncated record or a lying length raises :class:`HprofError` naming the byte offset and the record.

Sizes follow ART (objects 8-byte aligned): an instance is its 8-byte object header plus its field values (the
class chain's fields, as dumped); an array is a 12-byte header (16 for 8-byte elements) plus its elements, object
arrays holding 4-byte compressed references. This module reads the format only; ``heap.Heap.from_hprof`` lays
the objects out.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict

import numpy as np
import numpy.typing as npt

from . import _native
from .errors import HprofError

if TYPE_CHECKING:
    from .heap import StrPath

HEAP_CHOICES = ("app", "zygote", "image", "all")
_HEAP_IDS = {"app": ord("A"), "zygote": ord("Z"), "image": ord("I")}
_ELEM_SIZE = np.zeros(256, dtype=np.int64)
for _t, _s in ((2, 4), (4, 1), (5, 2), (6, 4), (7, 8), (8, 1), (9, 2), (10, 4), (11, 8)):
    _ELEM_SIZE[_t] = _s
KIND_INSTANCE, KIND_OBJECT_ARRAY, KIND_PRIMITIVE_ARRAY = 0, 1, 2
MAX_DUMP_BYTES = 1 << 34  # 16 GiB: larger files are refused before they are mapped

__all__ = ["HEAP_CHOICES", "HprofError", "HprofGraph", "read_hprof"]


@dataclass
class HprofGraph:
    """The objects of the chosen heap(s), sorted by ID (on Android the ID is the address)."""

    version: str
    id_size: int
    heaps: Dict[str, int]            # objects per heap in the whole dump
    chosen: str
    ids: npt.NDArray[np.uint64]
    kind: npt.NDArray[np.uint8]      # 0 instance, 1 object array, 2 primitive array
    class_id: npt.NDArray[np.uint64]  # 0 for primitive arrays
    size: npt.NDArray[np.int64]      # ART-like object size, 8-byte aligned
    ref_start: npt.NDArray[np.int64]  # count + 1
    refs: npt.NDArray[np.int64]      # object indices in this graph, -1 = null
    roots: npt.NDArray[np.int64]     # object indices (unique)
    root_kinds: Dict[str, int]       # roots by what made them roots
    external_refs: int               # references to objects outside the chosen heap(s): kept out (they never move)
    dangling_refs: int               # references to IDs the dump does not hold
    class_names: Dict[int, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.ids.size)


def _heap_name(d: Dict[str, Any], hid: int) -> str:
    name: str = d["strings"].get(d["heap_name"].get(hid, -1), b"").decode(errors="replace")
    if name:
        return name
    return {v: k for k, v in _HEAP_IDS.items()}.get(hid, "default" if hid == 0 else f"heap {hid}")


def parse(path: StrPath) -> Dict[str, Any]:
    """The raw parse of a dump file (the native parser's arrays)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size > MAX_DUMP_BYTES:
        raise HprofError(f"HPROF: {path} is {size} bytes, more than the {MAX_DUMP_BYTES >> 30} GiB this tool reads",
                         0, "file")
    if size == 0:
        raise HprofError(f"HPROF: {path} is empty, not a heap dump", 0, "header")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return _native.parse_hprof(m)


def read_hprof(path: StrPath, heap: str = "app") -> HprofGraph:
    """The object graph of ``heap`` ("app", "zygote", "image" or "all"; a dump without Android's heap records has
    one heap, taken whatever ``heap`` says). Raises HprofError (a ValueError) for a malformed dump, ValueError for
    an unknown or absent heap."""
    if heap not in HEAP_CHOICES:
        raise ValueError(f"unknown heap {heap!r}; choose one of {', '.join(HEAP_CHOICES)}")
    d = parse(path)
    obj_heap = d["obj_heap"].astype(np.int64)
    names = {int(h): _heap_name(d, int(h)) for h in np.unique(obj_heap)}
    heaps = {names[int(h)]: int(n) for h, n in zip(*np.unique(obj_heap, return_counts=True))}
    if heap == "all" or not d["heap_name"]:
        chosen_mask = np.ones(obj_heap.size, dtype=bool)
        chosen = "all" if d["heap_name"] else "default"
    else:
        want = [h for h, n in names.items() if n == heap]
        if not want:
            raise ValueError(f"the dump has no {heap!r} heap (it has: {', '.join(sorted(heaps)) or 'no objects'})")
        chosen_mask = obj_heap == want[0]
        chosen = heap

    all_ids: npt.NDArray[np.uint64] = d["obj_id"]
    sel = np.flatnonzero(chosen_mask)
    order = sel[np.argsort(all_ids[sel], kind="stable")]
    ids = all_ids[order]
    if ids.size and np.any(ids[1:] == ids[:-1]):
        dup = ids[1:][ids[1:] == ids[:-1]][0]
        raise HprofError(f"HPROF: object ID {int(dup):#x} is dumped twice", 0, "heap dump")
    kind = d["obj_kind"][order]
    length = d["obj_length"][order].astype(np.int64)
    elem = _ELEM_SIZE[d["obj_elem_type"][order]]
    size = np.where(kind == KIND_INSTANCE, 8 + length,
                    np.where(elem == 8, 16, 12) + length * elem)
    size = (size + 7) & ~7

    # References (CSR over the dump's objects) re-indexed to this graph: -1 for null, outside, or dangling.
    rs = d["ref_start"].astype(np.int64)
    counts = (rs[1:] - rs[:-1])[order]
    starts = rs[:-1][order]
    total = int(counts.sum())
    pos = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total, dtype=np.int64)
    target_ids = d["ref_ids"][pos]
    idx = np.searchsorted(ids, target_ids)
    idx_c = np.minimum(idx, max(ids.size - 1, 0))
    inside = (ids.size > 0) & (ids[idx_c] == target_ids) if ids.size else np.zeros(total, dtype=bool)
    refs = np.where(inside, idx_c, -1).astype(np.int64)
    nonnull = target_ids != 0
    in_dump = np.isin(target_ids[nonnull & ~inside], all_ids)
    external_refs = int(in_dump.sum())
    dangling_refs = int((~in_dump).sum())
    ref_start = np.zeros(ids.size + 1, dtype=np.int64)
    np.cumsum(counts, out=ref_start[1:])

    # Roots: the dump's GC roots, references from class statics (ART's classes live outside the moving space),
    # and objects of the chosen heap referenced from objects of the other heaps (which never move).
    def index_of(id_list: npt.ArrayLike) -> npt.NDArray[np.int64]:
        id_array = np.asarray(id_list, dtype=np.uint64)
        if not ids.size or not id_array.size:
            return np.zeros(0, dtype=np.int64)
        i = np.minimum(np.searchsorted(ids, id_array), ids.size - 1)
        found: npt.NDArray[np.int64] = i[ids[i] == id_array].astype(np.int64)  # numpy types the mask as Any
        return found

    root_kinds: Dict[str, int] = {}
    gc_roots = index_of(d["root_id"])
    root_kinds["gc roots"] = int(np.unique(gc_roots).size)
    statics = index_of([r for c in d["classes"] for r in c["static_refs"]])
    root_kinds["class statics"] = int(np.unique(statics).size)
    others = np.flatnonzero(~chosen_mask)
    if others.size:
        o_counts = rs[1:][others] - rs[:-1][others]
        o_pos = np.repeat(rs[:-1][others] - np.cumsum(o_counts) + o_counts, o_counts) + \
            np.arange(int(o_counts.sum()), dtype=np.int64)
        from_outside = index_of(d["ref_ids"][o_pos])
    else:
        from_outside = np.zeros(0, dtype=np.int64)
    root_kinds["referenced from other heaps"] = int(np.unique(from_outside).size)
    roots = np.unique(np.concatenate([gc_roots, statics, from_outside]))

    class_names: Dict[int, str] = {}
    for cid, sid in d["class_name"].items():
        text = d["strings"].get(sid)
        if text is not None:
            class_names[int(cid)] = text.decode(errors="replace")
    return HprofGraph(version=d["version"], id_size=int(d["id_size"]), heaps=heaps, chosen=chosen, ids=ids,
                      kind=kind, class_id=d["obj_class"][order], size=size.astype(np.int64), ref_start=ref_start,
                      refs=refs, roots=roots, root_kinds=root_kinds, external_refs=external_refs,
                      dangling_refs=dangling_refs, class_names=class_names)


def describe(graph: HprofGraph) -> Dict[str, Any]:
    """What the report shows beside the synthetic heap: counts, size histogram, references per object."""
    nrefs = np.diff(graph.ref_start)
    edges = [0, 16, 32, 64, 128, 256, 1024, 4096, 1 << 62]
    hist, _ = np.histogram(graph.size, bins=edges)
    return {"version": graph.version, "heap": graph.chosen, "heaps_in_dump": graph.heaps,
            "objects": graph.count, "instances": int((graph.kind == KIND_INSTANCE).sum()),
            "object_arrays": int((graph.kind == KIND_OBJECT_ARRAY).sum()),
            "primitive_arrays": int((graph.kind == KIND_PRIMITIVE_ARRAY).sum()),
            "bytes": int(graph.size.sum()), "mean_refs_per_object": float(nrefs.mean()) if nrefs.size else 0.0,
            "size_histogram": {f"<={edges[i + 1]}" if i + 2 < len(edges) else f">{edges[i]}": int(h)
                               for i, h in enumerate(hist)},
            "roots": graph.root_kinds, "external_refs": graph.external_refs, "dangling_refs": graph.dangling_refs}
