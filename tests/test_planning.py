"""The planner against a brute-force reference, edge-case heaps, page sizes, determinism, and the plan file."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compactor
from compactor import PlanFileError, SystemCallError, _native
from compactor.marking import mark

from heap_helpers import brute_force, make_heap


def check_plan_against_brute_force(heap, page_size):
    p = compactor.plan(heap, page_size=page_size)
    slide, pc, dense, end = brute_force(heap, p.live, page_size)
    assert p.slide_begin == slide and p.dense_prefix_pages == dense and p.post_compact_end == end
    live_idx = np.flatnonzero(p.live)
    got = p.post_compact_offsets(live_idx)
    assert list(got) == [pc[i] for i in live_idx]
    # Per page: the first object covers the page start, and the pre-compact offset maps onto the page start.
    for page in range(p.num_to_pages):
        start = page * page_size
        obj = int(np.searchsorted(heap.offset, p.first_obj[page], side="right") - 1)
        assert heap.offset[obj] == p.first_obj[page]
        if page < dense:
            assert heap.offset[obj] <= start < heap.offset[obj] + heap.size[obj]
            assert p.pre_compact_offset[page] == start
        else:
            assert p.live[obj] and pc[obj] <= start < pc[obj] + heap.size[obj]
            assert p.pre_compact_offset[page] == heap.offset[obj] + (start - pc[obj])
    return p


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), live=st.floats(0.0, 1.0),
       garbage=st.sampled_from(["uniform", "clustered", "dense-prefix"]),
       kib=st.integers(16, 160), page_size=st.sampled_from([4096, 16384]),
       sizes=st.sampled_from(["art", (16, 24, 40), (16, 4096, 9000)]))
def test_post_compact_addresses_equal_the_brute_force_slide(seed, live, garbage, kib, page_size, sizes):
    heap = compactor.Heap.generate(compactor.HeapSpec(size=kib * 1024, live_fraction=live, garbage=garbage,
                                                      sizes=sizes, roots=4, seed=seed), page_size=page_size)
    check_plan_against_brute_force(heap, page_size)


def test_marking_finds_exactly_the_intended_live_objects_of_a_tree():
    heap = make_heap([24, 32, 24, 16], [1, 0, 0, 0], 4096, nrefs=[2, 1, 0, 0], refs={0: [2, -1], 1: [3]})
    assert list(mark(heap).live) == [True, False, True, False]


def test_live_words_bitmap_marks_every_word_of_live_objects_only():
    heap = make_heap([16, 32, 520, 16], [0, 1, 1, 0], 4096)
    m = mark(heap)
    bits = np.unpackbits(m.live_words.view(np.uint8), bitorder="little")
    assert bits[:2].sum() == 0 and bits[2:2 + 4 + 65].all() and bits[2 + 4 + 65:].sum() == 0
    assert m.live_bytes == 32 + 520 and list(m.chunk_live_bytes[:2]) == [496, 56]


def test_straddling_objects_are_planned_across_pages():
    heap = make_heap([4000, 200, 5000, 304], [0, 1, 1, 1], 16384)
    p = check_plan_against_brute_force(heap, 4096)
    assert p.num_to_pages == 2 and p.first_obj[1] == heap.offset[2]


def test_empty_heap_plans_nothing():
    heap = make_heap([], [], 8192)
    p = compactor.plan(heap, page_size=4096)
    assert (p.post_compact_end, p.num_to_pages, p.live_bytes) == (0, 0, 0)
    assert compactor.collect(heap, "stw", plan=p).verified


def test_all_garbage_heap_compacts_to_nothing():
    heap = make_heap([64] * 100, [0] * 100, 8192, roots=[-1])
    p = compactor.plan(heap, page_size=4096)
    assert p.post_compact_end == 0
    assert compactor.collect(heap, "stw", plan=p).verified


def test_all_live_heap_is_one_dense_prefix_updated_in_place():
    heap = make_heap([64] * 128, [1] * 128, 8192)
    p = check_plan_against_brute_force(heap, 4096)
    assert p.dense_prefix_pages == 2 and p.post_compact_end == 8192
    assert compactor.collect(heap, "stw", plan=p).verified


def test_one_object_spanning_many_pages_slides_whole():
    heap = make_heap([4096, 40000, 64], [0, 1, 1], 65536)
    p = check_plan_against_brute_force(heap, 4096)
    assert p.post_compact_end == 40064 and p.num_to_pages == 10
    assert compactor.collect(heap, "stw", plan=p).verified


@pytest.mark.parametrize("page_size", [4096, 16384])
def test_both_page_sizes_plan_the_same_addresses(page_size):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="512KiB", seed=5), page_size=16384)
    p = check_plan_against_brute_force(heap, page_size)
    assert p.page_size == page_size and p.num_to_pages == -(-p.post_compact_end // page_size)


def test_generation_is_deterministic_by_seed():
    a = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=9))
    b = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=9))
    c = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=10))
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("offset", "size", "num_refs", "refs", "roots"))
    assert not np.array_equal(a.size, c.size)
    assert a.pristine_digest() == b.pristine_digest() != c.pristine_digest()


@pytest.mark.parametrize("garbage", ["uniform", "clustered", "dense-prefix"])
def test_generated_live_fraction_is_close_to_the_spec(garbage):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="8MiB", live_fraction=0.3, garbage=garbage, seed=2))
    frac = mark(heap).live_bytes / heap.used_end
    assert abs(frac - 0.3) < 0.08, frac


def test_dense_prefix_pattern_produces_a_dense_prefix():
    heap = compactor.Heap.generate(compactor.HeapSpec(size="8MiB", garbage="dense-prefix", seed=4))
    assert compactor.plan(heap).dense_prefix_pages > 100


def test_heap_spec_rejects_bad_input():
    with pytest.raises(ValueError, match="garbage pattern"):
        compactor.HeapSpec(garbage="fractal")
    with pytest.raises(ValueError, match="live_fraction"):
        compactor.HeapSpec(live_fraction=1.5)
    with pytest.raises(ValueError, match="malformed size"):
        compactor.HeapSpec(size="lots")
    with pytest.raises(ValueError, match="32-bit"):
        compactor.HeapSpec(size="8GiB")


def test_parse_size_units():
    assert compactor.parse_size("64MiB") == 64 << 20 and compactor.parse_size("1G") == 1 << 30
    assert compactor.parse_size("4096") == 4096


# ---- the plan file ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", garbage="dense-prefix", seed=11))
    p = compactor.plan(heap)
    path = tmp_path_factory.mktemp("plan") / "heap.plan"
    p.save(path)
    return p, path


def test_plan_file_round_trip_keeps_every_array(saved):
    p, path = saved
    q = compactor.Plan.load(path)
    for f in ("live_words", "chunk_offset", "first_obj", "first_obj_header", "pre_compact_offset"):
        assert np.array_equal(getattr(p, f), getattr(q, f)), f
    for f in ("offset", "size", "num_refs", "identity", "refs", "roots"):
        assert np.array_equal(getattr(p.heap, f), getattr(q.heap, f)), f
    assert ((q.dense_prefix_pages, q.slide_begin, q.post_compact_end)
            == (p.dense_prefix_pages, p.slide_begin, p.post_compact_end))
    assert q.expected_digest == p.heap.pristine_digest()[0] == q.heap.pristine_digest()[0]
    assert np.array_equal(q.live, p.live)


def test_loaded_plan_collects_and_verifies(saved):
    """A plan read back from its file drives a collection as the plan it was saved from does: the same to-space."""
    p, path = saved
    q = compactor.Plan.load(path)
    r = compactor.collect(q.heap, "stw", plan=q)
    assert r.verified and r.pages["total"] == q.num_to_pages == p.num_to_pages


# The format as the native core defines it (native/include/compactor/plan_file_format.hpp): the corruptions below
# are placed by its field offsets, not by a copy of them.
FORMAT = _native.plan_file_format()


def _header_field(name):
    return FORMAT["header_fields"][name]  # (offset, size)


def _entry_field(index, name):
    offset, size = FORMAT["section_entry_fields"][name]
    return FORMAT["header_size"] + index * FORMAT["section_entry_size"] + offset, size


def _uint(raw, field):
    offset, size = field
    return int.from_bytes(raw[offset:offset + size], "little")


def _section_index(raw, name):
    """Where section `name` is in the file's section table."""
    for i in range(_uint(raw, _header_field("num_sections"))):
        if _uint(raw, _entry_field(i, "id")) == FORMAT["sections"][name]:
            return i
    raise AssertionError(f"no section {name}")


def _section_data(raw, name):
    """File offset of section `name`'s first element."""
    return _uint(raw, _entry_field(_section_index(raw, name), "offset"))


def _corrupt(path, tmp_path, offset, data):
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    out = tmp_path / "bad.plan"
    out.write_bytes(bytes(raw))
    return out


def test_truncated_plan_file_is_rejected(saved, tmp_path):
    out = tmp_path / "short.plan"
    out.write_bytes(saved[1].read_bytes()[:-100])
    with pytest.raises(PlanFileError, match="truncated"):
        compactor.Plan.load(out)
    size = FORMAT["header_size"]
    out.write_bytes(saved[1].read_bytes()[:size - 1])
    with pytest.raises(PlanFileError, match=f"truncated: {size - 1} bytes, the header alone is {size}"):
        compactor.Plan.load(out)


def test_padded_plan_file_is_rejected(saved, tmp_path):
    out = tmp_path / "long.plan"
    out.write_bytes(saved[1].read_bytes() + bytes(8))
    with pytest.raises(PlanFileError, match="truncated or padded: header says .* bytes, file has"):
        compactor.Plan.load(out)


@pytest.mark.parametrize(("field", "value", "message"), [
    (("header", "magic"), b"NOTAPLAN", "bad magic"),
    (("header", "version"), 9, "version 9 is not supported"),
    (("header", "header_size"), 95, "header size field is 95"),
    (("header", "num_sections"), 65, "section count 65 out of range"),
    (("header", "num_sections"), 10, "missing section: pre-compact offsets"),
    (("header", "page_size"), 12288, "page_size 12288 is not a power of two"),
    (("header", "heap_size"), 12345, "heap_size 12345 is not a positive multiple of the page size"),
    (("entry", 0, "id"), 99, "unknown section id 99"),
    (("entry", 1, "id"), 1, "object offsets appears twice"),
    (("entry", 2, "element_size"), 4, "object reference counts: element size 4"),
    (("entry", 0, "offset"), 1 << 40, "object offsets lies outside the file"),
    (("entry", 0, "offset"), 4, "object offsets lies outside the file"),  # not 8-aligned
])
def test_corrupt_header_or_section_table_is_rejected(saved, tmp_path, field, value, message):
    offset, size = _header_field(field[1]) if field[0] == "header" else _entry_field(field[1], field[2])
    data = value if isinstance(value, bytes) else value.to_bytes(size, "little")
    with pytest.raises(PlanFileError, match=message):
        compactor.Plan.load(_corrupt(saved[1], tmp_path, offset, data))


def test_the_description_section_is_optional(saved, tmp_path):
    p, path = saved
    last = _uint(path.read_bytes(), _header_field("num_sections")) - 1  # a full plan has no old_gen_end entry
    assert _section_index(path.read_bytes(), "description") == last  # so a table one entry shorter lacks it
    offset, size = _header_field("num_sections")
    q = compactor.Plan.load(_corrupt(path, tmp_path, offset, last.to_bytes(size, "little")))
    assert q.heap.origin["description"] == "" and np.array_equal(q.first_obj, p.first_obj)


def test_out_of_range_page_array_is_rejected(saved, tmp_path):
    p, path = saved
    off = _section_data(path.read_bytes(), "first_obj")
    with pytest.raises(PlanFileError, match=r"first_obj\[0\] out of range"):
        compactor.Plan.load(_corrupt(path, tmp_path, off, struct.pack("<I", 0xFFFFFFF0)))


def test_reference_to_a_missing_object_is_rejected(saved, tmp_path):
    off = _section_data(saved[1].read_bytes(), "refs")
    with pytest.raises(PlanFileError, match="names object"):
        compactor.Plan.load(_corrupt(saved[1], tmp_path, off, struct.pack("<i", 10**8)))


def _native_table_short_of_one_size(p):
    h = p.heap
    return _native.ObjectTable(h.heap_size, h.offset, h.size[:-1], h.num_refs, h.identity, h.refs, h.roots)


def _native_plan_short_of_one_first_obj(p):
    return _native.Plan(p.heap_size, p.page_size, p.live_words, p.chunk_offset, p.first_obj[:-1], p.first_obj_header,
                        p.pre_compact_offset, p.dense_prefix_pages, p.slide_begin, p.post_compact_end, p.live_bytes)


@pytest.mark.parametrize(("section", "build", "message"), [
    ("size", _native_table_short_of_one_size, "object table: arrays differ in length"),
    ("first_obj", _native_plan_short_of_one_first_obj, "plan: per-page arrays differ in length"),
])
def test_arrays_of_different_lengths_are_rejected_by_the_loader_as_by_the_binding(saved, tmp_path, section, build,
                                                                                   message):
    """The loader and the binding's ObjectTable and Plan share one assembly of table and plan: the same message."""
    p, path = saved
    with pytest.raises(PlanFileError, match=message) as direct:
        build(p)
    raw = path.read_bytes()
    count = _entry_field(_section_index(raw, section), "count")
    shorter = (_uint(raw, count) - 1).to_bytes(count[1], "little")
    with pytest.raises(PlanFileError, match=message) as loaded:
        compactor.Plan.load(_corrupt(path, tmp_path, count[0], shorter))
    assert str(loaded.value) == f"{tmp_path / 'bad.plan'}: {direct.value}"


def test_missing_plan_file_is_a_clear_error(tmp_path):
    with pytest.raises(PlanFileError, match="cannot open"):
        compactor.Plan.load(tmp_path / "nope.plan")


# Written by the format's first writer (compactor/planfile.py with struct.pack) from _handmade_plan(): whoever writes
# plan files now must write these bytes, and whoever reads them must read this plan.
VERSION_1_FILE = pathlib.Path(__file__).parent / "data" / "plan-file" / "v1-handmade.plan"


def _handmade_plan():
    """Two pages, the first black-dense, the second with dead objects between live ones; references, a null root."""
    heap = make_heap([24, 32, 520, 16, 3504, 40, 16, 24, 4016], [], 8192, nrefs=[2, 0, 1, 0, 0, 1, 0, 0, 0],
                     refs={0: [2, -1], 2: [5], 5: [7]}, roots=[0, 1, 3, 4, -1])
    return compactor.plan(heap, page_size=4096)


def test_save_writes_the_version_1_format_byte_for_byte(tmp_path):
    out = tmp_path / "handmade.plan"
    _handmade_plan().save(out)
    assert out.read_bytes() == VERSION_1_FILE.read_bytes()


def test_a_version_1_file_loads_as_the_plan_it_was_written_from():
    p, q = _handmade_plan(), compactor.Plan.load(VERSION_1_FILE)
    assert (q.dense_prefix_pages, q.slide_begin, q.post_compact_end) == (1, 4096, 4160)
    for f in ("live_words", "chunk_offset", "first_obj", "first_obj_header", "pre_compact_offset", "live"):
        assert np.array_equal(getattr(p, f), getattr(q, f)), f
    assert q.expected_digest == p.heap.pristine_digest()[0]


def test_save_is_atomic_and_leaves_no_partial_file(saved, tmp_path):
    p, _ = saved
    target = tmp_path / "x.plan"
    p.save(target)
    assert sorted(os.listdir(tmp_path)) == ["x.plan"]


def test_a_failed_save_names_the_problem_and_leaves_nothing_behind(saved, tmp_path):
    p, _ = saved
    taken = tmp_path / "taken"
    taken.mkdir()  # renaming the complete temporary file onto a directory fails: the temporary file must go
    with pytest.raises(SystemCallError, match=r"saving plan file '.*taken': renaming .* failed: .*Is a directory"):
        p.save(taken)
    assert sorted(os.listdir(tmp_path)) == ["taken"] and not os.listdir(taken)
    with pytest.raises(SystemCallError, match="creating a temporary file in .*missing.* failed: .*No such file"):
        p.save(tmp_path / "missing" / "x.plan")


def test_a_plan_is_not_saved_with_another_heap(saved, tmp_path):
    p, _ = saved
    other = compactor.Heap.generate(compactor.HeapSpec(size="2MiB", seed=1))
    with pytest.raises(PlanFileError, match="object table is for a heap of 2097152 bytes, the plan for one of 1048576"):
        dataclasses.replace(p, heap=other).save(tmp_path / "x.plan")
    assert not os.listdir(tmp_path)


def test_select_bit_finds_the_kth_set_bit_of_every_word():
    """select_bit (the byte-table bit selection that locates each to-space page's first live word) agrees with
    a bit-by-bit search on random, full, single-bit and top-bit words, for every rank."""
    from compactor.planning import select_bit

    rng = np.random.default_rng(5)
    words = np.concatenate([rng.integers(1, 2 ** 63, 3000, dtype=np.uint64) << np.uint64(1) | np.uint64(1),
                            np.full(64, 2 ** 64 - 1, dtype=np.uint64), np.uint64(1) << np.arange(64, dtype=np.uint64)])
    bits = [[i for i in range(64) if int(w) >> i & 1] for w in words]
    k = np.array([rng.integers(len(b)) for b in bits], dtype=np.int64)
    k[-128:-64] = np.arange(64)  # every rank of the full word
    assert select_bit(words, k).tolist() == [b[j] for b, j in zip(bits, k)]
