"""The Python API's contract: probing, handshake, bad input, unprivileged use, and a model of the kernel's rules."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compactor import uffd

from conftest import require, run_python
from uffd_helpers import PS, fill, page_of, populate_dst


def test_probe_names_match_bits(feats):
    for name in feats.names:
        assert feats.bits & uffd.feature_bit(name)
    assert ("move" in feats) == bool(feats.bits & (1 << 16))


def test_probe_offers_move_sigbus_and_thread_id_here(feats):
    for name in ("move", "sigbus", "thread_id", "poison"):
        require(name in feats, f"this kernel lacks UFFD_FEATURE_{name.upper()}")


def test_handshake_negotiates_exactly_the_requested_features(feats):
    with uffd.Userfaultfd(["sigbus", "thread_id"]) as u:
        assert u.features == frozenset({"sigbus", "thread_id"})
        assert u.available == feats.names


def test_unknown_feature_name_is_a_valueerror():
    with pytest.raises(ValueError, match="unknown userfaultfd feature 'warp'"):
        uffd.Userfaultfd(["warp"])


def test_anonymous_missing_registration_lists_the_installing_ioctls(u, mapping, feats):
    ioctls = u.register(mapping(1).address, PS)
    assert {"copy", "zeropage", "wake"} <= ioctls
    assert ("move" in ioctls) == ("move" in feats)


def test_fd_is_cloexec_and_nonblocking(u):
    import fcntl
    assert fcntl.fcntl(u.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert fcntl.fcntl(u.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK


def test_use_after_close_raises_valueerror(mapping):
    u = uffd.Userfaultfd()
    u.close()
    assert u.closed
    with pytest.raises(ValueError, match="closed"):
        u.register(mapping(1).address, PS)
    with pytest.raises(ValueError, match="closed"):
        u.fileno()


@pytest.mark.parametrize("length", [-PS, -1])
def test_negative_length_is_a_valueerror(u, mapping, length):
    with pytest.raises(ValueError, match="non-negative"):
        u.move(mapping(1).address, mapping(1).address, length)


@pytest.mark.parametrize("bad", ["0x1000", 1.5, None])
def test_wrong_types_are_typeerrors(u, bad):
    with pytest.raises(TypeError, match="must be an int"):
        u.copy(bad, 0, PS)


def test_mapping_rejects_bad_lengths():
    with pytest.raises(ValueError, match="positive"):
        uffd.Mapping(0)
    with pytest.raises(TypeError):
        uffd.Mapping("4096")


def test_mapping_supports_the_buffer_protocol():
    m = uffd.Mapping(2 * PS)
    a = np.frombuffer(m, dtype=np.uint64)
    a[:] = 7
    view = memoryview(m)
    ok = (view[8], view[1], int(a.ctypes.data), len(view)) == (7, 0, m.address, 2 * PS)
    view.release()
    del a
    m.close()
    assert ok


def test_mapping_refuses_to_close_while_views_exist():
    m = uffd.Mapping(PS)
    view = memoryview(m)
    with pytest.raises(BufferError):
        m.close()
    view.release()
    m.close()
    assert m.closed


def test_mapping_dontneed_drops_contents():
    with uffd.Mapping(PS) as m:
        fill(m, 0, 3)
        m.dontneed()
        assert page_of(m, 0) == b"\0" * PS


def test_move_agrees_with_what_probe_reports(u, mapping, feats):
    """MOVE works exactly when probe() offers it (on a kernel without MOVE the error names the missing feature;
    that branch runs only there: the emulated 6.1 device covers the kernel side, tests/test_device.py)."""
    dst, src = mapping(1), mapping(1)
    fill(src, 0, 1)
    u.register(dst.address, PS)
    if "move" in feats:
        assert u.move(dst.address, src.address, PS) == PS
    else:  # pragma: no cover - kernels < 6.8
        with pytest.raises(uffd.UffdError, match="UFFD_FEATURE_MOVE"):
            u.move(dst.address, src.address, PS)


def test_unprivileged_user_mode_only_probe_and_move_work():
    r = run_python(f"""
        import os
        from compactor import uffd
        f = uffd.probe()
        with uffd.Userfaultfd() as u, uffd.Mapping({PS}) as d, uffd.Mapping({PS}) as s:
            s[0:2] = b"ok"
            u.register(d.address, {PS})
            n = u.move(d.address, s.address, {PS}) if "move" in f else u.copy(d.address, s.address, {PS})
            print(os.getuid(), n, d[0:2].decode(), u.opened_by)
    """, user=65534)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["65534", str(PS), "ok"]


def test_unprivileged_without_user_mode_only_gets_a_clear_error():
    with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
        require(f.read().strip() == "0", "vm.unprivileged_userfaultfd=1 lets everyone in: nothing to refuse")
    r = run_python("""
        from compactor import uffd
        try:
            uffd.Userfaultfd(user_mode_only=False)
        except uffd.UffdUnavailable as e:
            print("UNAVAILABLE", e.errno)
            print(e)
    """, user=65534)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("UNAVAILABLE")
    assert "user_mode_only=True" in r.stdout and "vm.unprivileged_userfaultfd" in r.stdout
    assert "/dev/userfaultfd" in r.stdout


# ---- a model of the kernel's rules, checked over random page patterns --------------------------------------

def model(op: str, src_present: list, dst_present: list, allow_holes: bool):
    """(bytes done, final errno or 0) that the kernel's rules predict for one COPY/MOVE over len(pattern) pages."""
    for i, (s, d) in enumerate(zip(src_present, dst_present)):
        if d:
            return i * PS, errno.EEXIST
        if op == "move" and not s and not allow_holes:
            return i * PS, errno.ENOENT
    return len(src_present) * PS, 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bytes_done_and_errno_follow_the_kernel_rules(need_move, data):
    n = data.draw(st.integers(1, 8))
    src_present = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    dst_present = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    op = data.draw(st.sampled_from(["move", "copy"]))
    allow = data.draw(st.booleans()) if op == "move" else False
    with uffd.Userfaultfd() as u, uffd.Mapping(n * PS) as dst, uffd.Mapping(n * PS) as src:
        for i, p in enumerate(src_present):
            if p:
                fill(src, i, 0x40 + i)
        u.register(dst.address, n * PS)
        for i, p in enumerate(dst_present):
            if p:
                populate_dst(u, dst, i, 0xEE)
        want_done, want_err = model(op, src_present, dst_present, allow)
        try:
            got = (u.move(dst.address, src.address, n * PS, allow_src_holes=allow) if op == "move"
                   else u.copy(dst.address, src.address, n * PS))
            got_done, got_err = got, 0
        except uffd.UffdError as e:
            got_done, got_err = e.done, e.errno
        assert (got_done, got_err) == (want_done, want_err)
        for i in range(want_done // PS):  # every page done holds the source's data (or stayed a hole)
            if src_present[i]:
                assert page_of(dst, i)[0] == 0x40 + i
