"""UFFDIO_MOVE semantics against the real kernel, one behaviour per test (../shared/docs/uffd-kernel-facts.md)."""

from __future__ import annotations

import errno
import mmap
import os

import pytest

from compactor import uffd

from uffd_helpers import PS, anon_huge_kb, fill, fork_a_child_that_exits, page_of, populate_dst, resident

pytestmark = pytest.mark.usefixtures("need_move")


def test_move_puts_data_at_dst_and_src_reads_zeros(u, mapping):
    dst, src = mapping(1), mapping(1)
    fill(src, 0, 0xAB)
    u.register(dst.address, PS)
    assert u.move(dst.address, src.address, PS) == PS
    assert page_of(dst, 0) == b"\xab" * PS
    assert page_of(src, 0) == b"\0" * PS


def test_move_of_many_pages_returns_total_bytes(u, mapping):
    dst, src = mapping(8), mapping(8)
    for i in range(8):
        fill(src, i, i + 1)
    u.register(dst.address, 8 * PS)
    assert u.move(dst.address, src.address, 8 * PS) == 8 * PS
    assert [page_of(dst, i)[0] for i in range(8)] == list(range(1, 9))


def test_move_leaves_source_pages_unpopulated(u, mapping):
    dst, src = mapping(4), mapping(4)
    for i in range(4):
        fill(src, i, 7)
    u.register(dst.address, 4 * PS)
    u.move(dst.address, src.address, 4 * PS)
    assert resident(src.address, 4) == [False] * 4


def test_move_onto_populated_dst_is_eexist_with_nothing_done(u, mapping):
    dst, src = mapping(1), mapping(1)
    fill(src, 0, 1)
    u.register(dst.address, PS)
    populate_dst(u, dst, 0, 9)
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, PS)
    assert (e.value.errno, e.value.op, e.value.done) == (errno.EEXIST, "MOVE", 0)
    assert page_of(src, 0)[0] == 1  # nothing moved


def test_move_eexist_after_partial_progress_reports_exact_bytes(u, mapping):
    dst, src = mapping(4), mapping(4)
    for i in range(4):
        fill(src, i, 10 + i)
    u.register(dst.address, 4 * PS)
    populate_dst(u, dst, 2, 99)
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, 4 * PS)
    assert e.value.errno == errno.EEXIST
    assert e.value.done == 2 * PS
    assert page_of(dst, 1)[0] == 11 and page_of(src, 2)[0] == 12


def test_move_from_a_source_hole_is_enoent(u, mapping):
    dst, src = mapping(1), mapping(1)
    u.register(dst.address, PS)
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, PS)
    assert (e.value.errno, e.value.done) == (errno.ENOENT, 0)


def test_move_enoent_after_partial_progress_reports_exact_bytes(u, mapping):
    dst, src = mapping(3), mapping(3)
    fill(src, 0, 1)
    u.register(dst.address, 3 * PS)
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, 3 * PS)
    assert (e.value.errno, e.value.done) == (errno.ENOENT, PS)


def test_move_allow_src_holes_counts_holes_as_moved_and_leaves_dst_unmapped(u, mapping):
    dst, src = mapping(3), mapping(3)
    fill(src, 0, 5)
    fill(src, 2, 6)
    u.register(dst.address, 3 * PS)
    assert u.move(dst.address, src.address, 3 * PS, allow_src_holes=True) == 3 * PS
    assert resident(dst.address, 3) == [True, False, True]
    assert page_of(dst, 0)[0] == 5 and page_of(dst, 2)[0] == 6


@pytest.mark.parametrize("what", ["dst", "src", "len"])
def test_move_unaligned_argument_is_einval(u, mapping, what):
    dst, src = mapping(2), mapping(2)
    fill(src, 0, 1)
    u.register(dst.address, 2 * PS)
    d, s, n = dst.address, src.address, PS
    if what == "dst":
        d += 8
    elif what == "src":
        s += 8
    else:
        n += 8
    with pytest.raises(uffd.UffdError) as e:
        u.move(d, s, n)
    assert e.value.errno == errno.EINVAL and e.value.done == 0


def test_move_of_zero_length_is_einval(u, mapping):
    dst, src = mapping(1), mapping(1)
    u.register(dst.address, PS)
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, 0)
    assert e.value.errno == errno.EINVAL


def test_move_with_unknown_mode_bits_is_einval(u, mapping):
    dst, src = mapping(1), mapping(1)
    fill(src, 0, 1)
    u.register(dst.address, PS)
    with pytest.raises(uffd.UffdError) as e:
        u._u.move(dst.address, src.address, PS, 1 << 7)  # the raw binding passes any mode through
    assert e.value.errno == errno.EINVAL


def test_move_into_unregistered_dst_is_einval(u, mapping):
    dst, src = mapping(1), mapping(1)
    fill(src, 0, 1)
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, PS)
    assert e.value.errno == errno.EINVAL


def test_move_after_fork_is_ebusy(u, mapping):
    dst, src = mapping(1), mapping(1)
    fill(src, 0, 3)
    u.register(dst.address, PS)
    fork_a_child_that_exits()
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, PS)
    assert e.value.errno == errno.EBUSY
    assert "not exclusive" in str(e.value)


def test_madv_dontfork_source_survives_fork_and_moves(u, mapping):
    dst, src = mapping(1), mapping(1, dontfork=True)
    fill(src, 0, 3)
    u.register(dst.address, PS)
    fork_a_child_that_exits()
    assert u.move(dst.address, src.address, PS) == PS


def test_move_from_shared_memfd_source_is_rejected(u, mapping):
    dst = mapping(1)
    fd = os.memfd_create("compactor-test")
    try:
        os.ftruncate(fd, PS)
        shm = mmap.mmap(fd, PS, flags=mmap.MAP_SHARED)
        shm[:4] = b"abcd"
        import numpy as np
        view = np.frombuffer(shm, dtype=np.uint8)
        src_addr = int(view.ctypes.data)
        u.register(dst.address, PS)
        with pytest.raises(uffd.UffdError) as e:
            u.move(dst.address, src_addr, PS)
        assert e.value.errno == errno.EINVAL
        del view
        shm.close()
    finally:
        os.close(fd)


def test_backward_overlapping_move_behaves_like_memmove(u, mapping):
    m = mapping(3)
    u.register(m.address, 3 * PS)
    populate_dst(u, m, 1, 0x11)
    populate_dst(u, m, 2, 0x22)
    assert u.move(m.address, m.address + PS, 2 * PS) == 2 * PS
    assert page_of(m, 0)[0] == 0x11 and page_of(m, 1)[0] == 0x22
    assert resident(m.address, 3) == [True, True, False]


def test_move_onto_a_poison_marker_is_eexist(u, mapping, feats):
    dst, src = mapping(1), mapping(1)
    fill(src, 0, 1)
    u.register(dst.address, PS)
    u.poison(dst.address, PS)
    with pytest.raises(uffd.UffdError) as e:
        u.move(dst.address, src.address, PS)
    assert e.value.errno == errno.EEXIST


def test_move_of_a_zero_page_pte_keeps_zeros(u, mapping):
    dst, src = mapping(1), mapping(1)
    assert page_of(src, 0) == b"\0" * PS  # a read maps the shared zero page
    u.register(dst.address, PS)
    assert u.move(dst.address, src.address, PS) == PS
    assert page_of(dst, 0) == b"\0" * PS


def test_move_of_a_thp_source_moves_all_of_it(u):
    from conftest import require
    huge = 2 << 20
    with uffd.Mapping(2 * huge) as srcm, uffd.Mapping(2 * huge) as dstm:
        s = (srcm.address + huge - 1) // huge * huge
        d = (dstm.address + huge - 1) // huge * huge
        srcm.madvise(mmap.MADV_HUGEPAGE, s - srcm.address, huge)
        srcm[s - srcm.address:s - srcm.address + huge] = b"\x5a" * huge
        thp = anon_huge_kb(s)
        require(thp >= 2048, "no transparent huge page was allocated for the source (THP disabled?)")
        u.register(d, huge)
        assert u.move(d, s, huge) == huge
        off = d - dstm.address
        assert dstm[off:off + 8] == b"\x5a" * 8 and dstm[off + huge - 8:off + huge] == b"\x5a" * 8




def test_move_of_part_of_a_thp_splits_it(u):
    """The kernel's move-pmd-split case: a MOVE that covers only part of a huge page splits the PMD, moves the
    covered pages and leaves the rest where they were."""
    from conftest import require
    huge = 2 << 20
    with uffd.Mapping(2 * huge) as srcm, uffd.Mapping(2 * huge) as dstm:
        s = (srcm.address + huge - 1) // huge * huge
        d = (dstm.address + huge - 1) // huge * huge
        srcm.madvise(mmap.MADV_HUGEPAGE, s - srcm.address, huge)
        base = s - srcm.address
        for i in range(huge // PS):
            srcm[base + i * PS:base + i * PS + 2] = bytes([i & 0xFF, i >> 8])
        require(anon_huge_kb(s) >= 2048, "no transparent huge page was allocated for the source (THP disabled?)")
        u.register(d, huge)
        assert u.move(d + 16 * PS, s + 16 * PS, 64 * PS) == 64 * PS
        assert anon_huge_kb(s) < 2048  # the huge PMD was split
        off = d - dstm.address
        assert all(dstm[off + (16 + i) * PS:off + (16 + i) * PS + 2] == bytes([(16 + i) & 0xFF, (16 + i) >> 8])
                   for i in range(64))
        assert resident(s, 16) == [True] * 16 and resident(s + 16 * PS, 64) == [False] * 64
        assert srcm[base + 100 * PS:base + 100 * PS + 2] == bytes([100, 0])
