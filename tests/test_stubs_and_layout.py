"""The .pyi stubs name every public symbol of the native module, and the C++ and numpy layouts agree."""

from __future__ import annotations

import ast
import pathlib

import numpy as np

import compactor
from compactor import _native, layout


def _stub_names():
    stub = pathlib.Path(compactor.__file__).with_name("_native.pyi")
    tree = ast.parse(stub.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign):  # a module constant
            names[node.target.id] = None
        elif isinstance(node, ast.ClassDef):
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | \
                {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
    return names


def test_stubs_name_every_public_symbol_of_native():
    stubs = _stub_names()
    public = {n for n in dir(_native) if not n.startswith("_")}
    assert public == set(stubs), f"missing from stubs: {public - set(stubs)}; stale in stubs: {set(stubs) - public}"
    for name, members in stubs.items():
        if members is None:
            continue
        cls_public = {m for m in dir(getattr(_native, name)) if not m.startswith("_")}
        assert cls_public == members - {"__init__"}, f"{name}: {cls_public ^ (members - {'__init__'})}"


def test_py_typed_marker_is_shipped():
    assert pathlib.Path(compactor.__file__).with_name("py.typed").exists()


def test_numpy_layout_matches_the_cpp_header():
    info = _native.layout_info()
    dt = layout.OBJECT_HEADER_DTYPE
    assert info["size_offset"] == dt.fields["size"][1] and dt["size"].itemsize == 4
    assert info["num_refs_offset"] == dt.fields["num_refs"][1] and dt["num_refs"].itemsize == 2
    assert info["klass_offset"] == dt.fields["klass"][1] and dt["klass"].itemsize == 2
    assert info["identity_offset"] == dt.fields["identity"][1] == layout.IDENTITY_OFFSET
    assert info["header_size"] == layout.HEADER_SIZE and info["refs_offset"] == layout.REFS_OFFSET == dt.itemsize
    assert info["chunk_size"] == layout.CHUNK_SIZE and info["null_ref"] == layout.NULL_REF
    assert (info["class_object"], info["class_filler"]) == (layout.CLASS_OBJECT, layout.CLASS_FILLER)
    assert info["min_object_size"] == layout.MIN_OBJECT_SIZE and info["max_heap_size"] == layout.MAX_HEAP_SIZE


def test_materialized_objects_read_back_through_the_numpy_dtype():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=3))
    view = heap.space.view()
    for i in (0, 1, heap.num_objects // 2, heap.num_objects - 1):
        rec = np.frombuffer(view[heap.offset[i]:heap.offset[i] + 16].tobytes(), dtype=layout.OBJECT_HEADER_DTYPE)[0]
        assert (rec["size"], rec["num_refs"], rec["klass"], rec["identity"]) == (
            heap.size[i], heap.num_refs[i], layout.CLASS_OBJECT, heap.identity[i])
        pay = heap.offset[i] + layout.payload_offset(int(heap.num_refs[i]))
        if pay < heap.offset[i] + heap.size[i]:
            word = int(np.frombuffer(view[pay:pay + 8].tobytes(), dtype="<u8")[0])
            assert word == _native.initial_payload_word(int(heap.identity[i]), 0)
