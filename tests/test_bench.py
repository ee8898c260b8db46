"""python -m compactor.bench: the report's schema, outputs, compare, and usage errors (no timing thresholds)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import jsonschema
import pytest

import compactor.collector
from compactor.bench.schema import SCHEMA, SCHEMA_ID

from conftest import bench, has_tlb_row, require

TINY = ["--quick", "--heap", "8MiB", "--repeat", "2", "--quiet"]


@pytest.fixture(scope="module")
def quick_json():
    p = bench("--quick", "--json", "-")  # the real --quick run, once
    return p


def test_quick_json_on_stdout_is_pure_json_and_valid(quick_json):
    report = json.loads(quick_json.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["schema"] == SCHEMA_ID


def test_quick_run_verifies_every_run_and_states_every_claim(quick_json):
    report = json.loads(quick_json.stdout)
    runs = [r for r in report["runs"] if r["status"] == "measured"]
    assert {r["strategy"] for r in runs} == set(compactor.collector.STRATEGIES)
    assert all(r["verified"] for r in runs)
    assert {c["id"] for c in report["claims"]} == {"move-vs-copy", "copy-vs-move-alloc", "copy-overhead-share"}
    assert all(c["holds"] in ("yes", "direction only", "no") for c in report["claims"])
    assert {"memcpy", "copy_1", "move_1", "move_batch_512", "write_then_move"} <= set(report["limits"])


def test_every_run_reports_interrupts_and_load_measures(quick_json):
    report = json.loads(quick_json.stdout)
    require(has_tlb_row(), "this kernel's /proc/interrupts has no TLB row (arm64 broadcasts TLB invalidations)")
    for r in report["runs"]:
        if r["status"] != "measured" or r["strategy"] == "stw":
            continue
        assert isinstance(r["interrupts"]["tlb_shootdowns"], (int, float)) and r["interrupts"]["tlb_shootdowns"] >= 0
        assert len(r["interrupts_per_repetition"]["tlb_shootdowns"]) == report["config"]["repeat"]
        assert r["shootdowns_per_1000_pages"] is not None
        m = r["machine"]
        assert m["cpus"] >= 1 and m["threads_needed"] == 1 + r["mutators"]
        if r["strategy"] == "move" or (r["strategy"] == "hybrid" and r["mutators"] == 0):
            assert m["ioctl_move"] > 0 and m["mean_pages_per_move"] >= 1
        if r["strategy"] == "hybrid" and m["ioctl_move"]:  # under load hybrid may MOVE nothing, never short runs
            # GC runs are >= 64 pages, retries aside; with mutators their one-page MOVEs count too, and on a loaded
            # machine they resolve more pages (14.75 seen beside a build): the mean stays well above one page.
            assert m["mean_pages_per_move"] >= (4 if r["mutators"] else 1)
    # the default does not oversubscribe: mutators <= CPUs - 1 (at least one)
    cpus = report["environment"]["cpus"]
    assert max(report["config"]["mutators"]) == max(1, cpus - 1)


def test_interleaved_repetitions_give_per_repetition_ratios(quick_json):
    report = json.loads(quick_json.stdout)
    for r in report["runs"]:
        if r["status"] == "measured":
            assert len(r["gc_thread_s"]) == len(r["ratio_vs_copy"]) == report["config"]["repeat"]
            if r["strategy"] == "copy":
                assert all(x == pytest.approx(1.0) for x in r["ratio_vs_copy"])


def test_progress_never_pollutes_stdout():
    p = bench(*TINY[:-1], "--json", "-", "--strategies", "copy")  # progress bar on (no --quiet)
    assert json.loads(p.stdout)["schema"] == SCHEMA_ID  # stdout is nothing but the JSON document
    assert p.stdout.lstrip().startswith("{") and p.stdout.rstrip().endswith("}")


def test_text_report_lists_claims_and_runs():
    p = bench(*TINY, "--strategies", "copy,move")
    assert "The seed's claims, here" in p.stdout and "move-vs-copy" in p.stdout
    assert "GC (compacting) thread completion time" in p.stdout


def test_csv_plot_raw_and_json_files_are_written(tmp_path):
    out = tmp_path / "r.json"
    bench(*TINY, "--mutators", "2", "--strategies", "copy,move", "--json", str(out), "--csv", str(tmp_path / "r.csv"),
          "--plot", str(tmp_path / "r.png"), "--raw", str(tmp_path / "raw"))
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    rows = (tmp_path / "r.csv").read_text().strip().split("\n")
    assert rows[0].startswith("strategy,faults,mutators,repetition") and len(rows) == 1 + 2 * 2 * 2  # stress, app
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["copy_sigbus_2.npy", "copy_sigbus_2_app.npy",
                                                                     "move_sigbus_2.npy", "move_sigbus_2_app.npy"]


def test_svg_plot(tmp_path):
    bench(*TINY, "--strategies", "copy", "--plot", str(tmp_path / "r.svg"))
    assert "<svg" in (tmp_path / "r.svg").read_text()[:400]


def test_compare_prints_two_runs_side_by_side(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    bench(*TINY, "--strategies", "copy,move", "--json", str(a))
    bench(*TINY, "--strategies", "copy,move", "--json", str(b), "--seed", "2")
    p = bench("compare", str(a), str(b))
    assert "move/sigbus/0" in p.stdout and "B/A" in p.stdout and "move-vs-copy" in p.stdout


def test_compare_rejects_a_file_that_is_not_a_report(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    p = bench("compare", str(bad), str(bad), check=False)
    assert p.returncode == 2 and "not a compactor.bench report" in p.stderr


def test_runner_executor_gives_the_same_pages_and_verifies(tmp_path):
    a = json.loads(bench(*TINY, "--strategies", "copy,move", "--mutators", "0", "--json", "-").stdout)
    b = json.loads(bench(*TINY, "--strategies", "copy,move", "--mutators", "0", "--json", "-", "--runner").stdout)
    assert b["config"]["executor"] == "runner"
    for ra, rb in zip(a["runs"], b["runs"]):
        assert ra["key"] == rb["key"] and ra["verified"] and rb["verified"]
        assert ra["pages"] == rb["pages"]


@pytest.mark.parametrize(("args", "message"), [
    (["--strategies", "copy,teleport"], "unknown strategy teleport"),
    (["--heap", "lots"], "malformed size"),
    (["--live", "1.5"], "must lie in (0, 1]"),
    (["--mutators", "two"], "comma-separated integers"),
    (["--batch", "0"], "--batch: must lie in [1, 4096], got 0"),
    (["--batch", "100000"], "--batch: must lie in [1, 4096]"),
    (["--mutators", "0,300"], "--mutators: mutator counts must lie in [0, 256]"),
    (["--mutators", "-1"], "--mutators: mutator counts must lie in [0, 256]"),
    (["--heap", "0"], "--heap"),
    (["--heap", "100GiB"], "--heap: must lie in [1MiB"),
    (["--repeat", "0"], "--repeat: must lie in [1, 1000]"),
    (["--move-min-run", "0"], "--move-min-run: must lie in [1, 4096]"),
    (["--gc-cpu", "4000"], "gc_cpu names CPU 4000, which this process may not run on"),
    (["--mutator-cpus", "0,4000"], "mutator_cpus names CPU 4000"),
    (["--gc-cpu", "-1"], "--gc-cpu: must lie in [0, 4095]"),
    (["--backoff", "spin"], "invalid choice: 'spin'"),
    (["--plot", "x.gif"], ".png or .svg"),
    (["--faults", "poll"], "unknown fault mode"),
    (["sweep", "--batch", "0"], "--batch: bad batch list"),
    (["sweep", "--live", "0.5,7"], "--live: bad live fraction list"),
])
def test_bad_options_are_usage_errors(args, message):
    p = subprocess.run([sys.executable, "-m", "compactor.bench", *args], capture_output=True, text=True,
                       timeout=60, cwd="/")  # a bad option never hangs: refused before anything runs
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_a_heap_larger_than_memory_is_refused_before_mapping(monkeypatch):
    monkeypatch.setenv("COMPACTOR_MEMORY_LIMIT", str(512 << 20))
    p = bench("--heap", "1GiB", "--quiet", check=False)
    assert p.returncode == 2
    assert "a 1024 MiB heap needs about" in p.stderr and "only 512 MiB are available" in p.stderr


def test_the_compaction_section_sets_each_runs_compaction_against_the_floors(quick_json):
    report = json.loads(quick_json.stdout)
    limits, comp = report["limits"], report["compaction"]
    assert {"page_copy", "live_stride_copy", "compact_page"} <= set(limits)
    floor = comp["floor_ns_per_page"]
    assert floor["compact_page"] == limits["compact_page"]["median_ns_per_page"] > 0
    assert comp["compact_page_vs_memcpy"] == pytest.approx(floor["compact_page"] / floor["memcpy"])
    assert comp["reference_run"] == "copy/sigbus/0"
    runs = {r["key"]: r for r in report["runs"] if r["status"] == "measured"}
    concurrent = {k for k, r in runs.items() if r["strategy"] != "stw"}
    assert {g["key"] for g in comp["gc_thread"]} == concurrent
    for g in comp["gc_thread"]:
        r = runs[g["key"]]
        pages = r["pages"]["total"] - r["pages"]["by_mutators"]
        assert g["pages_compacted_by_gc"] == pages > 0
        assert g["compact_ns_per_page"] == pytest.approx(r["gc_time_ns"]["compact"] / pages)
        assert 0 < g["compact_share_of_gc_thread"] < 1
        assert g["vs_live_stride_copy"] == pytest.approx(g["compact_ns_per_page"] / floor["live_stride_copy"])
    ref = next(g for g in comp["gc_thread"] if g["key"] == "copy/sigbus/0")
    assert comp["meets_vs_memcpy"] == (ref["vs_memcpy"] <= comp["targets"]["vs_memcpy_max"])


@pytest.mark.parametrize("command", [["--quick"], ["sweep", "--quick"], ["lifetime", "--heap", "8MiB"],
                                     ["scale", "--sizes", "8MiB"], ["compare", "a.json", "b.json"],
                                     ["soak", "--collections", "1"]])
def test_an_output_file_in_a_missing_folder_is_refused_before_anything_runs(tmp_path, command):
    """Regression: `--json` into a missing folder measured everything, then died in mkstemp with a traceback
    (lifetime, sweep, compare). Every command refuses it up front: status 2, the folder named, nothing written."""
    target = tmp_path / "no-such-folder" / "report.json"
    if command[0] == "soak":
        soak = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
        p = subprocess.run([sys.executable, str(soak), *command[1:], "--json", str(target)],
                           capture_output=True, text=True, timeout=120, cwd="/")
    else:
        p = bench(*command, "--json", str(target), check=False)
    assert p.returncode == 2, p.stderr
    assert f"the folder {target.parent} does not exist" in p.stderr and "Traceback" not in p.stderr
    assert not target.parent.exists()
