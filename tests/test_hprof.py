"""Real heaps from HPROF dumps: the parser against an independent reading of the records, sizes and references of
named objects, liveness, scaling, bad input, fuzzing, and collections of every strategy on the real-shaped heap."""

from __future__ import annotations

import os
import pathlib
import shutil
import struct
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import compactor
from compactor import HprofError, hprof

from conftest import require

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The dumps ship in tests/data/hprof; the project's shared/ copy beside the checkout is the fallback.
DUMPS = next((d for d in (ROOT / "tests" / "data" / "hprof", ROOT.parent / "shared" / "data" / "hprof")
              if (d / "test-dump.hprof").exists()), ROOT / "tests" / "data" / "hprof")
ANDROID, JVM = DUMPS / "test-dump.hprof", DUMPS / "RI.hprof"


@pytest.fixture(scope="module")
def dumps():
    require(ANDROID.exists() and JVM.exists(), f"the HPROF test dumps are not at {DUMPS} (tests/data/hprof)")
    return {"android": ANDROID, "jvm": JVM}


SIZES = {2: None, 4: 1, 5: 2, 6: 4, 7: 8, 8: 1, 9: 2, 10: 4, 11: 8}


def independent_reading(path):
    """A slow, plain-Python reading of the records: counts per heap, independent of the native parser."""
    data = path.read_bytes()
    nul = data.index(b"\0")
    ids = struct.unpack(">I", data[nul + 1:nul + 5])[0]
    SIZES[2] = ids
    idf = ">I" if ids == 4 else ">Q"
    pos = nul + 1 + 4 + 8
    counts = Counter()
    heap = "default"
    heap_names = {}
    strings = {}
    while pos < len(data):
        tag, _, length = struct.unpack(">BII", data[pos:pos + 9])
        body, end = pos + 9, pos + 9 + length
        if tag == 0x01:
            strings[struct.unpack(idf, data[body:body + ids])[0]] = data[body + ids:end]
        if tag in (0x0C, 0x1C):
            p = body
            while p < end:
                st = data[p]
                p += 1
                if st == 0xFE:
                    hid, sid = struct.unpack(">I", data[p:p + 4])[0], struct.unpack(idf, data[p + 4:p + 4 + ids])[0]
                    heap = strings.get(sid, b"").decode() or chr(hid)
                    heap_names[hid] = heap
                    p += 4 + ids
                elif st in (0xFF, 0x05, 0x07, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x90):
                    counts[("root", st)] += 1
                    p += ids
                elif st == 0x01:
                    counts[("root", st)] += 1
                    p += 2 * ids
                elif st in (0x04, 0x06):
                    counts[("root", st)] += 1
                    p += ids + 4
                elif st in (0x02, 0x03, 0x08, 0x8E):
                    counts[("root", st)] += 1
                    p += ids + 8
                elif st == 0x20:
                    counts[(heap, "class")] += 1
                    p += 7 * ids + 4 + 4
                    ncp = struct.unpack(">H", data[p:p + 2])[0]
                    p += 2
                    for _ in range(ncp):
                        p += 2
                        p += 1 + SIZES[data[p]]
                    nst = struct.unpack(">H", data[p:p + 2])[0]
                    p += 2
                    for _ in range(nst):
                        p += ids
                        p += 1 + SIZES[data[p]]
                    nf = struct.unpack(">H", data[p:p + 2])[0]
                    p += 2 + nf * (ids + 1)
                elif st == 0x21:
                    counts[(heap, "instance")] += 1
                    n = struct.unpack(">I", data[p + 2 * ids + 4:p + 2 * ids + 8])[0]
                    p += 2 * ids + 8 + n
                elif st == 0x22:
                    counts[(heap, "object array")] += 1
                    n = struct.unpack(">I", data[p + ids + 4:p + ids + 8])[0]
                    p += 2 * ids + 8 + n * ids
                elif st in (0x23, 0xC3):
                    counts[(heap, "primitive array")] += 1
                    n = struct.unpack(">I", data[p + ids + 4:p + ids + 8])[0]
                    t = data[p + ids + 8]
                    p += ids + 9 + (n * SIZES[t] if st == 0x23 else 0)
                else:
                    raise AssertionError(f"unknown sub-record {st:#x}")
        pos = end
    return counts


@pytest.mark.parametrize("which", ["android", "jvm"])
def test_parser_counts_agree_with_an_independent_reading(dumps, which):
    expected = independent_reading(dumps[which])
    d = hprof.parse(dumps[which])
    names = {int(h): hprof._heap_name(d, int(h)) for h in np.unique(d["obj_heap"])}
    kinds = {0: "instance", 1: "object array", 2: "primitive array"}
    got = Counter((names[int(h)] if d["heap_name"] else "default", kinds[int(k)])
                  for h, k in zip(d["obj_heap"], d["obj_kind"]))
    got.update(Counter(("root", int(t)) for t in d["root_type"]))
    class_heaps = Counter((hprof._heap_name(d, c["heap"]) if d["heap_name"] else "default", "class")
                          for c in d["classes"])
    got.update(class_heaps)
    assert got == expected


def test_the_android_app_heap_has_the_documented_counts(dumps):
    g = hprof.read_hprof(dumps["android"], "app")
    assert (g.version, g.id_size) == ("JAVA PROFILE 1.0.3", 4)
    kinds = Counter(g.kind.tolist())
    assert (kinds[0], kinds[1], kinds[2]) == (22094, 650, 2049)
    d = hprof.parse(dumps["android"])
    app = [h for h, sid in d["heap_name"].items() if d["strings"].get(sid) == b"app"][0]
    assert sum(1 for c in d["classes"] if c["heap"] == app) == 1126
    assert set(g.heaps) >= {"app"}


def test_the_jvm_dump_has_one_heap_with_the_documented_counts(dumps):
    g = hprof.read_hprof(dumps["jvm"], "app")  # a JVM dump has one heap, whatever is asked
    assert (g.version, g.id_size, g.chosen) == ("JAVA PROFILE 1.0.2", 4, "default")
    kinds = Counter(g.kind.tolist())
    assert (kinds[0], kinds[1], kinds[2]) == (22454, 740, 1348)
    assert len(hprof.parse(dumps["jvm"])["classes"]) == 476


def test_named_objects_have_their_real_size_and_references(dumps):
    g = hprof.read_hprof(dumps["jvm"])
    by_name = {v: k for k, v in g.class_names.items()}
    string_cls = by_name["java/lang/String"] if "java/lang/String" in by_name else by_name["java.lang.String"]
    i = int(np.flatnonzero(g.class_id == string_cls)[0])
    # java.lang.String (JDK 8): value (char[]), hash (int): 4 + 4 bytes of fields, 8-byte header -> 16
    assert g.size[i] == 16
    targets = g.refs[g.ref_start[i]:g.ref_start[i + 1]]
    assert targets.size == 1 and g.kind[targets[0]] == hprof.KIND_PRIMITIVE_ARRAY
    # an object array: 12-byte header + 4-byte references, 8-aligned; its elements are its references
    j = int(np.flatnonzero(g.kind == hprof.KIND_OBJECT_ARRAY)[0])
    n = int(g.ref_start[j + 1] - g.ref_start[j])
    assert g.size[j] == (12 + 4 * n + 7) & ~7
    heap = compactor.Heap.from_hprof(dumps["jvm"])
    assert heap.num_refs[i] == 1 and heap.refs[heap.ref_start[i]] == targets[0]
    assert heap.size[i] >= g.size[i]


def test_heap_from_hprof_counts_scale_and_liveness(dumps):
    one = compactor.Heap.from_hprof(dumps["android"])
    n = 22094 + 650 + 2049
    assert one.num_objects == n
    three = compactor.Heap.from_hprof(dumps["android"], scale=3)
    assert three.num_objects == 3 * n and three.roots.size == 3 * one.roots.size
    assert np.array_equal(three.size[n:2 * n], one.size)
    full = compactor.plan(one).live_bytes
    half = compactor.Heap.from_hprof(dumps["android"], live_fraction=0.5, seed=3)
    live = compactor.plan(half).live_bytes
    assert 0.5 * full <= live <= 0.75 * full  # whole subgraphs die: about half of the bytes, never less
    assert half.describe()["hprof"]["heap"] == "app"


@pytest.mark.parametrize("strategy", ["stw", "copy", "move", "move-alloc", "hybrid"])
@pytest.mark.parametrize("faults", ["sigbus", "thread"])
@pytest.mark.parametrize("mutators", [0, 2])
def test_every_strategy_verifies_on_the_real_heaps(dumps, need_move, strategy, faults, mutators, real_heaps):
    for heap, plan in real_heaps:
        r = compactor.collect(heap, strategy, faults=faults, mutators=mutators, plan=plan)
        # stop-the-world takes no faults: it reports fault mode "none"
        assert (r.strategy, r.faults, r.fallback) == (strategy, "none" if strategy == "stw" else faults, "")


@pytest.fixture(scope="module")
def real_heaps(dumps):
    app = compactor.Heap.from_hprof(dumps["android"])
    scale = max(1, (64 << 20) // app.used_end)
    big = compactor.Heap.from_hprof(dumps["android"], scale=scale, live_fraction=0.5)
    assert big.heap_size >= 48 << 20
    jvm = compactor.Heap.from_hprof(dumps["jvm"])
    return [(h, compactor.plan(h)) for h in (big, jvm)]


def _corrupt(src, tmp_path, offset, data=None, cut=False):
    b = bytearray(src.read_bytes())
    if cut:
        b = b[:offset]
    else:
        b[offset:offset + len(data)] = data
    p = tmp_path / "bad.hprof"
    p.write_bytes(bytes(b))
    return p


def test_bad_dumps_raise_hprof_error_naming_offset_and_record(dumps, tmp_path):
    src = dumps["android"]
    with pytest.raises(HprofError, match="not an HPROF file"):
        hprof.parse(_corrupt(src, tmp_path, 0, b"GIF89a"))
    with pytest.raises(HprofError, match=r"truncated.*at byte offset \d+"):
        hprof.parse(_corrupt(src, tmp_path, 1_000_000, cut=True))
    # the first record's length field claims more than the file holds
    first = src.read_bytes().index(b"\0") + 1 + 12
    with pytest.raises(HprofError, match=r"record header at byte offset %d" % first):
        hprof.parse(_corrupt(src, tmp_path, first + 5, struct.pack(">I", 0xFFFFFF00)))
    (tmp_path / "empty.hprof").write_bytes(b"")
    with pytest.raises(HprofError, match="empty"):
        hprof.parse(tmp_path / "empty.hprof")
    assert issubclass(HprofError, ValueError)


def test_an_unknown_sub_record_is_an_error_and_an_unknown_record_is_skipped(dumps, tmp_path):
    data = bytearray(dumps["jvm"].read_bytes())
    hdr = data.index(b"\0") + 1 + 12
    extra = bytes([0x42]) + struct.pack(">II", 0, 5) + b"hello"  # unknown record tag: skipped by its length
    ok = tmp_path / "extra.hprof"
    ok.write_bytes(bytes(data[:hdr]) + extra + bytes(data[hdr:]))
    assert hprof.parse(ok)["skipped_records"] == hprof.parse(dumps["jvm"])["skipped_records"] + 1
    bad = bytes([0x1C]) + struct.pack(">II", 0, 1) + bytes([0x77])  # a heap-dump segment with sub-record 0x77
    p = tmp_path / "sub.hprof"
    p.write_bytes(bytes(data[:hdr]) + bad + bytes(data[hdr:]))
    with pytest.raises(HprofError, match=r"unknown heap-dump sub-record tag 0x77 \(unknown sub-record at byte offset"):
        hprof.parse(p)


def test_bench_runs_on_a_real_heap_and_describes_it(dumps):
    import json

    p = subprocess.run([sys.executable, "-m", "compactor.bench", "--heap-from", str(dumps["android"]), "--heap",
                        "8MiB", "--repeat", "1", "--mutators", "0", "--strategies", "copy,move", "--quiet", "--json",
                        "-"], capture_output=True, text=True, timeout=300, cwd="/")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    h = rep["heap"]["hprof"]
    assert h["instances"] > 0 and h["objects"] * h["scale"] == rep["heap"]["objects"]
    assert all(r["verified"] for r in rep["runs"])
    bad = subprocess.run([sys.executable, "-m", "compactor.bench", "--heap-from", "/etc/hostname", "--quick"],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert bad.returncode == 2 and "not an HPROF file" in bad.stderr


def test_the_hprof_parser_survives_fuzzing(dumps, tmp_path):
    require(bool(shutil.which("clang++-14") or shutil.which("clang++")),
            "clang with libFuzzer is not installed (apt-get install clang-14 libclang-rt-14-dev)")
    env = dict(os.environ, FUZZ_OUT=str(tmp_path), PYTHON=sys.executable)
    p = subprocess.run(["bash", str(ROOT / "tests" / "fuzz" / "run_hprof.sh"), "50000", str(DUMPS)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Done 50000 runs" in p.stdout + p.stderr


@pytest.mark.parametrize("ids", [4, 8])
@pytest.mark.parametrize("version", [b"JAVA PROFILE 1.0.2", b"JAVA PROFILE 1.0.3"])
def test_both_versions_and_identifier_sizes(tmp_path, ids, version):
    sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
    try:
        from make_hprof_corpus import dump
    finally:
        sys.path.pop(0)
    android = version.endswith(b"3")
    p = tmp_path / "small.hprof"
    p.write_bytes(dump(version, ids, android))
    d = hprof.parse(p)
    assert d["id_size"] == ids and d["version"] == version.decode()
    assert d["skipped_records"] == 2  # STACK_TRACE and HEAP_DUMP_END
    assert len(d["root_id"]) == (16 if android else 9)
    g = hprof.read_hprof(p, "app")
    node = int(np.searchsorted(g.ids, 200))
    assert g.size[node] == (8 + ids + 4 + 7) & ~7  # header + next (an ID) + an int
    assert g.refs[g.ref_start[node]:g.ref_start[node + 1]].tolist() == [int(np.searchsorted(g.ids, 201))]
    arr = int(np.searchsorted(g.ids, 202))
    assert g.refs[g.ref_start[arr]:g.ref_start[arr + 1]].tolist() == [node, int(np.searchsorted(g.ids, 203))]
