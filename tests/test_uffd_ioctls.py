"""COPY, ZEROPAGE, POISON, WRITEPROTECT, CONTINUE, WAKE, events and real blocking faults, one behaviour per test."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import threading
import time

import numpy as np
import pytest

from compactor import _native, uffd

from conftest import require, run_python
from uffd_helpers import PS, fill, page_of, populate_dst


def test_copy_fills_dst_and_keeps_src(u, mapping):
    dst, src = mapping(2), mapping(2)
    fill(src, 0, 1)
    fill(src, 1, 2)
    u.register(dst.address, 2 * PS)
    assert u.copy(dst.address, src.address, 2 * PS) == 2 * PS
    assert page_of(dst, 1)[0] == 2 and page_of(src, 1)[0] == 2


def test_copy_onto_populated_dst_is_eexist(u, mapping):
    dst, src = mapping(1), mapping(1)
    u.register(dst.address, PS)
    populate_dst(u, dst, 0, 1)
    with pytest.raises(uffd.UffdError) as e:
        u.copy(dst.address, src.address, PS)
    assert (e.value.errno, e.value.op, e.value.done) == (errno.EEXIST, "COPY", 0)


def test_copy_eexist_after_partial_progress_reports_exact_bytes(u, mapping):
    dst, src = mapping(4), mapping(4)
    u.register(dst.address, 4 * PS)
    populate_dst(u, dst, 3, 1)
    with pytest.raises(uffd.UffdError) as e:
        u.copy(dst.address, src.address, 4 * PS)
    assert (e.value.errno, e.value.done) == (errno.EEXIST, 3 * PS)


def test_copy_into_unregistered_dst_is_enoent(u, mapping):
    dst, src = mapping(1), mapping(1)
    with pytest.raises(uffd.UffdError) as e:
        u.copy(dst.address, src.address, PS)
    assert e.value.errno == errno.ENOENT


def test_copy_accepts_an_unaligned_source(u, mapping):
    dst, src = mapping(1), mapping(2)
    src[8:16] = b"unalign!"
    u.register(dst.address, PS)
    assert u.copy(dst.address, src.address + 8, PS) == PS
    assert dst[0:8] == b"unalign!"


def test_copy_from_a_source_hole_copies_zeros(u, mapping):
    dst, src = mapping(1), mapping(1)
    u.register(dst.address, PS)
    assert u.copy(dst.address, src.address, PS) == PS
    assert page_of(dst, 0) == b"\0" * PS


def test_copy_mode_wp_needs_a_wp_registration(u, mapping):
    dst, src = mapping(1), mapping(1)
    u.register(dst.address, PS)
    with pytest.raises(uffd.UffdError) as e:
        u.copy(dst.address, src.address, PS, wp=True)
    assert e.value.errno == errno.EINVAL


def test_zeropage_maps_zeros(u, mapping):
    dst = mapping(2)
    u.register(dst.address, 2 * PS)
    assert u.zeropage(dst.address, 2 * PS) == 2 * PS
    assert page_of(dst, 1) == b"\0" * PS


def test_zeropage_onto_populated_dst_is_eexist(u, mapping):
    dst = mapping(1)
    u.register(dst.address, PS)
    populate_dst(u, dst, 0, 1)
    with pytest.raises(uffd.UffdError) as e:
        u.zeropage(dst.address, PS)
    assert e.value.errno == errno.EEXIST


def test_poisoned_page_raises_sigbus_on_access():
    r = run_python(f"""
        from compactor import uffd
        u = uffd.Userfaultfd()
        m = uffd.Mapping({PS})
        u.register(m.address, {PS})
        assert u.poison(m.address, {PS}) == {PS}
        print("poisoned", flush=True)
        m[0]
    """)
    assert "poisoned" in r.stdout, r.stderr
    assert r.returncode == -7, (r.returncode, r.stderr)  # killed by SIGBUS


def test_sigbus_feature_turns_a_missing_fault_into_sigbus():
    r = run_python(f"""
        from compactor import uffd
        u = uffd.Userfaultfd(["sigbus"])
        assert u.features == frozenset({{"sigbus"}})
        m = uffd.Mapping({PS})
        u.register(m.address, {PS})
        print("registered", flush=True)
        m[0]
    """)
    assert "registered" in r.stdout, r.stderr
    assert r.returncode == -7, (r.returncode, r.stderr)


def test_sigbus_feature_with_a_resolved_page_reads_normally():
    r = run_python(f"""
        from compactor import uffd
        u = uffd.Userfaultfd(["sigbus"])
        dst, src = uffd.Mapping({PS}), uffd.Mapping({PS})
        src[0:3] = b"abc"
        u.register(dst.address, {PS})
        u.copy(dst.address, src.address, {PS})
        print(dst[0:3].decode())
    """)
    assert r.returncode == 0 and r.stdout.strip() == "abc", r.stderr


def test_blocking_fault_is_read_as_an_event_and_resolved_by_move(need_move, mapping):
    with uffd.Userfaultfd(["thread_id"]) as u:
        dst, src = mapping(1), mapping(1)
        src[0:8] = (0x1122334455667788).to_bytes(8, "little")
        u.register(dst.address, PS)
        t = _native.Toucher(dst.address)
        events = _wait_events(u)
        assert events[0].kind == "pagefault"
        assert events[0].address == dst.address
        assert events[0].flags & uffd.PAGEFAULT_FLAG_WRITE == 0
        assert events[0].thread_id > 0
        assert u.move(dst.address, src.address, PS) == PS
        assert t.join(5.0) and t.result == 0x1122334455667788


def test_write_fault_event_has_the_write_flag(u, mapping):
    dst = mapping(1)
    u.register(dst.address, PS)
    t = _native.Toucher(dst.address, write=True, value=42)
    ev = _wait_events(u)[0]
    assert ev.flags & uffd.PAGEFAULT_FLAG_WRITE
    u.zeropage(dst.address, PS)
    assert t.join(5.0) and t.result == 42


def test_dontwake_leaves_the_faulter_asleep_until_wake(need_move, u, mapping):
    dst, src = mapping(1), mapping(1)
    src[0:8] = (7).to_bytes(8, "little")
    u.register(dst.address, PS)
    t = _native.Toucher(dst.address)
    _wait_events(u)
    u.move(dst.address, src.address, PS, dontwake=True)
    assert not t.join(0.3)
    u.wake(dst.address, PS)
    assert t.join(5.0) and t.result == 7


def test_read_events_with_nothing_pending_returns_empty_list(u):
    assert u.read_events() == []


def test_pending_remove_event_makes_move_eagain_until_read(need_move, mapping):
    with uffd.Userfaultfd(["event_remove"]) as u:
        dst, src, other = mapping(1), mapping(1), mapping(1)
        fill(src, 0, 1)
        u.register(other.address, PS)
        populate_dst(u, other, 0, 3)
        u.register(dst.address, PS)
        # MADV_DONTNEED on a registered range queues a REMOVE event and blocks its caller until the event is
        # read, so another thread does it (ctypes releases the GIL).
        advisor = threading.Thread(target=_madvise_dontneed, args=(other.address, PS))
        advisor.start()
        poller = select.poll()
        poller.register(u.fileno(), select.POLLIN)
        assert poller.poll(5000), "no REMOVE event was queued"  # queued, not read
        with pytest.raises(uffd.UffdError) as e:
            u.move(dst.address, src.address, PS)
        assert (e.value.errno, e.value.done) == (errno.EAGAIN, 0)
        assert "pending" in str(e.value)
        assert [ev.kind for ev in _wait_events(u)] == ["remove"]
        advisor.join(5)
        assert u.move(dst.address, src.address, PS) == PS


def test_writeprotect_blocks_writes_until_cleared(mapping):
    with uffd.Userfaultfd(["wp"]) as u:
        m = mapping(1)
        fill(m, 0, 1)
        ioctls = u.register(m.address, PS, missing=False, wp=True)
        assert "writeprotect" in ioctls
        u.writeprotect(m.address, PS, True)
        t = _native.Toucher(m.address, write=True, value=9)
        ev = _wait_events(u)[0]
        assert ev.flags & uffd.PAGEFAULT_FLAG_WP
        assert not t.done
        u.writeprotect(m.address, PS, False)
        assert t.join(5.0) and t.result == 9


def test_continue_resolves_a_minor_fault_on_shmem(feats):
    require("minor_shmem" in feats, "this kernel lacks UFFD_FEATURE_MINOR_SHMEM")
    fd = os.memfd_create("compactor-minor")
    try:
        os.ftruncate(fd, PS)
        a = mmap.mmap(fd, PS, flags=mmap.MAP_SHARED)
        b = mmap.mmap(fd, PS, flags=mmap.MAP_SHARED)
        a[0:5] = b"minor"  # the page is in the page cache, not mapped in b
        vb = np.frombuffer(b, dtype=np.uint8)
        addr = int(vb.ctypes.data)
        with uffd.Userfaultfd(["minor_shmem"]) as u:
            assert "continue" in u.register(addr, PS, missing=False, minor=True)
            t = _native.Toucher(addr)
            ev = _wait_events(u)[0]
            assert ev.flags & uffd.PAGEFAULT_FLAG_MINOR
            assert u.continue_(addr, PS) == PS
            assert t.join(5.0)
            assert t.result.to_bytes(8, "little")[:5] == b"minor"
            u.unregister(addr, PS)
        del vb
        a.close()
        b.close()
    finally:
        os.close(fd)


def test_unregister_returns_the_range_to_normal_faults(u, mapping):
    m = mapping(1)
    u.register(m.address, PS)
    u.unregister(m.address, PS)
    assert page_of(m, 0) == b"\0" * PS


def test_register_beyond_a_mapping_fails_with_a_clear_error(u, mapping):
    m = mapping(1)
    with pytest.raises(uffd.UffdError) as e:
        u.register(m.address, 1 << 40)
    assert e.value.op == "REGISTER" and e.value.errno in (errno.ENOMEM, errno.EINVAL)


def _madvise_dontneed(address: int, length: int) -> None:
    from uffd_helpers import _libc
    _libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), mmap.MADV_DONTNEED)


def _wait_events(u, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = u.read_events()
        if ev:
            return ev
        time.sleep(0.001)
    raise AssertionError("no userfaultfd event arrived")
