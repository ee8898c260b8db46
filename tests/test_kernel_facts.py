"""The kernel, named: the known UFFDIO_MOVE bugs by version and by probe, ART's MOVE check, `info --json`, the
once-per-process KernelMoveWarning, and this kernel's behaviour for write-protected pages moved with MOVE."""

from __future__ import annotations

import json
import platform
import struct
import subprocess
import sys
import time

import jsonschema
import pytest

from compactor import _native, kernel_facts, uffd
from compactor.bench.schema import SCHEMA

from conftest import bench, features, require, run_python
from uffd_helpers import PS, fill, page_of

PTE, RACE, PMD, CVE, WP = ("move-pte-unmap-and-swapcache-bug", "move-swapcache-race", "move-pmd-migration-entry-crash",
                           "CVE-2026-31397", "move-drops-uffd-wp")
MOVE_KERNEL_SCHEMA = SCHEMA["properties"]["environment"]["properties"]["move_kernel"]


@pytest.mark.parametrize(("release", "version"), [
    ("6.18.44-fc-v1300", (6, 18, 44)),
    ("6.12.19-android16-5-g8a1b2c3d4e5f", (6, 12, 19)),
    ("6.1.0-18-amd64", (6, 1, 0)),
    ("5.15.0-105-generic", (5, 15, 0)),
    ("6.14", (6, 14, 0)),
    ("7.0.0-rc3", (7, 0, 0)),
])
def test_a_release_string_parses_to_its_version(release, version):
    """uname -r strings of mainline, Android GKI, Debian and Ubuntu kernels give (major, minor, patch)."""
    assert kernel_facts.parse_release(release) == version


def test_an_unreadable_release_is_refused_naming_it():
    """A release without MAJOR.MINOR first is a ValueError naming the string and the expected form."""
    with pytest.raises(ValueError, match=r"'linux-next'.*MAJOR\.MINOR"):
        kernel_facts.parse_release("linux-next")


# release -> (ART would use MOVE, the known bugs it may have), by version (the table's ranges and ART's minimums)
VERSIONS = [
    ("6.1.0-18-amd64", False, set()),  # no MOVE: nothing applies
    ("6.7.12", False, set()),
    ("6.8.0", False, {PTE, RACE, PMD, WP}),
    ("6.12.19-android16-5-g8a1b2c3d4e5f", False, {PTE, RACE, PMD, WP}),
    ("6.12.20-android16-5-g8a1b2c3d4e5f", True, {RACE, PMD, WP}),
    ("6.12.42", True, {RACE, PMD, WP}),
    ("6.12.43", True, {RACE, WP}),  # the 6.12.y backport of the swap-cache race fix is not recorded: "may have"
    ("6.13.7", False, {PTE, RACE, PMD, WP}),
    ("6.13.8", True, {RACE, PMD, WP}),
    ("6.14.0", True, {RACE, PMD, WP}),
    ("6.15.4", True, {RACE, PMD, WP}),
    ("6.15.5", True, {PMD, WP}),
    ("6.16.0", True, {PMD, CVE, WP}),
    ("6.17.0", True, {CVE, WP}),
    ("6.18.19", True, {CVE, WP}),
    ("6.18.20", True, {WP}),
    ("6.18.44-fc-v1300", True, {WP}),
    ("6.19.9", True, {CVE, WP}),
    ("6.19.10", True, {WP}),
    ("7.0.0", True, {WP}),
]


@pytest.mark.parametrize(("release", "art", "bugs"), VERSIONS)
def test_a_release_has_the_known_bugs_of_its_version_and_arts_answer(release, art, bugs):
    """evaluate(release) lists exactly the bugs whose ranges hold the version, and ART's MoveIoctlKernelCheck."""
    facts = kernel_facts.evaluate(release)
    assert {b["id"] for b in facts["known_bugs"]} == bugs
    assert facts["art_would_use_move"] is art
    assert all(b["evidence"] == "by version" and b["probe"] is None for b in facts["known_bugs"])
    jsonschema.validate(facts, MOVE_KERNEL_SCHEMA)


def test_the_advice_names_what_a_user_must_know():
    """No MOVE, ART's refusal, the crash bugs with their fixed versions, and the uffd-wp drop each reach the advice."""
    assert "no UFFDIO_MOVE" in kernel_facts.evaluate("6.7.12")["advice"]
    old = kernel_facts.evaluate("6.12.19-android16")["advice"]
    assert "ART would NOT use MOVE" in old and "6.12.20" in old and "--strategy copy" in old
    assert "write protection" in kernel_facts.evaluate("6.18.44")["advice"]
    assert kernel_facts.evaluate("6.18.44", move=False)["known_bugs"] == []


def test_every_table_entry_has_a_source_and_well_formed_ranges():
    """Each bug has an id, title, what, source, ranges [first, last] that parse and are ordered, and fixed
    versions outside its affected ranges; the issue's five bugs are all there."""
    bugs = kernel_facts.load_bugs()
    assert [b["id"] for b in bugs] == [PTE, RACE, PMD, CVE, WP]
    for b in bugs:
        assert all(isinstance(b[k], str) and b[k].strip() for k in ("id", "title", "what", "source")), b["id"]
        assert b["affected"], b["id"]
        assert b["affects_collections"] is (b["id"] != WP), b["id"]  # collections never use uffd-wp
        for first, last in b["affected"]:
            lo = kernel_facts.parse_release(first)
            assert last is None or kernel_facts.parse_release(last) >= lo, (b["id"], first, last)
        assert b["fixed_in"] is None or b["fixed_in"], b["id"]
        for fixed in b["fixed_in"] or []:
            assert not kernel_facts.in_ranges(kernel_facts.parse_release(fixed), b["affected"]), (b["id"], fixed)
        assert b["probe"] is None or b["probe"] in kernel_facts.PROBES


def test_info_json_has_the_move_kernel_facts():
    """`python -m compactor info --json` (installed package) has move_kernel: known_bugs with id, title, affected,
    fixed_in, art_would_use_move and advice, as the running kernel's version and probe give them."""
    p = subprocess.run([sys.executable, "-m", "compactor", "info", "--json"], capture_output=True, text=True,
                       timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    mk = json.loads(p.stdout)["move_kernel"]
    jsonschema.validate(mk, MOVE_KERNEL_SCHEMA)
    assert all({"id", "title", "affected", "fixed_in"} <= set(b) for b in mk["known_bugs"])
    by_version = kernel_facts.evaluate(platform.release())
    assert mk["art_would_use_move"] is by_version["art_would_use_move"]
    assert {b["id"] for b in mk["known_bugs"]} <= {b["id"] for b in by_version["known_bugs"]}
    probed_here = kernel_facts.evaluate()  # the same version and the same probe, in this process
    assert [(b["id"], b["evidence"]) for b in mk["known_bugs"]] == \
        [(b["id"], b["evidence"]) for b in probed_here["known_bugs"]]


def test_info_text_shows_arts_answer_the_bugs_and_the_advice():
    """`python -m compactor info` prints ART's MOVE answer, each known bug with how it was judged, and the advice."""
    p = subprocess.run([sys.executable, "-m", "compactor", "info"], capture_output=True, text=True, timeout=60,
                       cwd="/")
    assert p.returncode == 0, p.stderr
    facts = kernel_facts.evaluate()
    assert "ART uses MOVE" in p.stdout and "advice" in p.stdout
    assert all(f"{b['id']}: " in p.stdout for b in facts["known_bugs"])


WARN_CHILD = """
import sys, warnings
from compactor import KernelMoveWarning, kernel_facts
from compactor import Heap, HeapSpec, collect
if len(sys.argv) > 1:  # judge as if this process ran on that release (the collections still run on this kernel)
    facts = kernel_facts.evaluate(sys.argv[1])
    kernel_facts.running_kernel_facts = lambda: facts
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    heap = Heap.generate(HeapSpec(size="4MiB", live_fraction=0.5, seed=1))
    collect(heap, "copy")
    collect(heap, "move")
    collect(heap, "hybrid")
mine = [w for w in caught if issubclass(w.category, KernelMoveWarning)]
print(len(mine))
print(str(mine[0].message) if mine else "")
print(",".join(b["id"] for b in kernel_facts.running_kernel_facts()["known_bugs"] if b["affects_collections"]))
"""


def test_a_move_collection_on_an_affected_kernel_warns_once_per_process(need_move):
    """Two MOVE collections in a fresh process give one KernelMoveWarning naming this kernel's known bugs that
    collections can hit (none where it has none, as on this 6.18.44: uffd-wp is not theirs; COPY never warns)."""
    p = run_python(WARN_CHILD, timeout=120)
    assert p.returncode == 0, p.stderr
    count, message, ids = p.stdout.splitlines()
    expected = [i for i in ids.split(",") if i]
    assert int(count) == (1 if expected else 0)
    assert all(i in message for i in expected) and ("Advice:" in message) == bool(expected)


def test_move_collections_judged_as_an_affected_release_warn_once_naming_its_bugs(need_move):
    """The same three collections in a process that judges the kernel as 6.16.0 (its facts for that release):
    exactly one KernelMoveWarning, through collect(), naming the bugs collections can hit there."""
    p = subprocess.run([sys.executable, "-c", WARN_CHILD, "6.16.0"], capture_output=True, text=True, timeout=120,
                       cwd="/")
    assert p.returncode == 0, p.stderr
    count, message, ids = p.stdout.splitlines()
    expected = [i for i in ids.split(",") if i]
    assert expected and int(count) == 1
    assert all(i in message for i in expected) and "Advice:" in message


def test_the_warning_for_an_explicit_release_comes_once_and_names_its_bugs():
    """warn_for_strategy with a given release's facts: COPY is silent, the first MOVE strategy warns naming the
    bugs and ART's refusal, the next is silent; a kernel without MOVE never warns."""
    p = run_python("""
        import warnings
        from compactor import KernelMoveWarning, kernel_facts as kf
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(kf.warn_for_strategy("move", kf.evaluate("6.7.12")))
            old = kf.evaluate("6.12.19-android16-5-g8a1b2c3d4e5f")
            print(kf.warn_for_strategy("copy", old), kf.warn_for_strategy("move", old),
                  kf.warn_for_strategy("hybrid", old))
        assert all(issubclass(w.category, KernelMoveWarning) for w in caught)
        print(len(caught))
        print(caught[0].message)
    """)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:3] == ["False", "False True False", "1"]
    assert all(i in lines[3] for i in (PTE, RACE, PMD, WP)) and "ART would NOT use MOVE" in lines[3]


def test_the_bench_report_names_the_move_kernel_facts_and_warns_once(need_move):
    """A bench with copy and move prints the MOVE kernel facts under its header and warns at most once."""
    p = bench("--quick", "--heap", "8MiB", "--repeat", "1", "--quiet", "--strategies", "copy,move")
    assert "MOVE kernel facts: ART would use MOVE" in p.stdout
    warned = p.stderr.count("KernelMoveWarning")
    assert warned == (1 if any(b["affects_collections"] for b in kernel_facts.evaluate()["known_bugs"]) else 0)


def _pagemap(address: int) -> int:
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(address // PS * 8)
        return struct.unpack("<Q", f.read(8))[0]


def _uffd_wp(address: int) -> bool:
    entry = _pagemap(address)
    assert entry >> 63 & 1, "the page is not present"
    return bool(entry >> 57 & 1)  # PM_UFFD_WP


def test_move_of_a_write_protected_page_drops_write_protection_on_this_kernel(mapping):
    """MOVE of a uffd-write-protected page leaves the destination unprotected (no WP fault on a write) on every
    kernel the table's move-drops-uffd-wp ranges cover (all with MOVE until the pending fix lands), and protected
    where its fixed_in says the fix is in; this kernel behaves as its version says."""
    feats = features()
    require("move" in feats and "wp" in feats, "this kernel lacks UFFDIO_MOVE or userfaultfd write protection")
    entry = next(b for b in kernel_facts.load_bugs() if b["id"] == WP)
    version = kernel_facts.parse_release(platform.release())
    expect_dropped = kernel_facts.in_ranges(version, entry["affected"])
    src, dst = mapping(1), mapping(1)
    fill(src, 0, 0x5A)
    with uffd.Userfaultfd(["wp"]) as u:
        u.register(src.address, PS, missing=True, wp=True)
        u.register(dst.address, PS, missing=True, wp=True)
        u.writeprotect(src.address, PS, True)
        assert _uffd_wp(src.address), "the source is not write-protected: the check below could not tell"
        assert u.move(dst.address, src.address, PS) == PS
        assert _uffd_wp(dst.address) is not expect_dropped
        writer = _native.Toucher(dst.address, write=True, value=7)  # a write from a second thread
        if expect_dropped:
            assert writer.join(5.0), "the write to the moved page blocked: write protection was kept"
            assert u.read_events() == []
        else:
            deadline, events = time.monotonic() + 5, []
            while not events and time.monotonic() < deadline:
                events = u.read_events()
                time.sleep(0.001)
            assert events and events[0].flags & uffd.PAGEFAULT_FLAG_WP
            u.writeprotect(dst.address, PS, False)
            assert writer.join(5.0)
        assert page_of(dst, 0)[8:] == bytes([0x5A]) * (PS - 8)
    assert kernel_facts.probe_wp_across_move()[0] == ("dropped" if expect_dropped else "preserved")
