"""The bench side of young collections (issue 23): `bench --gc young,full`, the sweep's old-share axis and `bench
lifetime` on small heaps; every collection verified, the generational fields consistent, the refusals named (no
timing thresholds)."""

from __future__ import annotations

import csv
import json

import jsonschema
import pytest

from compactor.bench.lifetime import next_kind
from compactor.bench.schema import LIFETIME_SCHEMA, SCHEMA, SWEEP_SCHEMA

from conftest import bench, features, require

TINY = ["--quick", "--heap", "8MiB", "--repeat", "2", "--quiet", "--strategies", "copy,move,hybrid"]


@pytest.fixture(scope="module")
def young_full(tmp_path_factory):
    """One `bench --gc young,full` run on 8 MiB (0 and 1 mutators), its JSON report and CSV rows."""
    require("move" in features(), "this kernel lacks UFFDIO_MOVE (Linux >= 6.8)")
    d = tmp_path_factory.mktemp("young")
    p = bench(*TINY, "--mutators", "0,1", "--mutator-profile", "stress", "--gc", "young,full",
              "--json", str(d / "r.json"), "--csv", str(d / "r.csv"))
    with open(d / "r.csv") as f:
        rows = list(csv.DictReader(f))
    return json.loads((d / "r.json").read_text()), rows, p.stdout


def test_young_and_full_runs_of_every_strategy_verify(young_full):
    """Both kinds are measured for every strategy and mutator count, each verified, each against COPY of its kind."""
    report, _, _ = young_full
    jsonschema.validate(report, SCHEMA)
    runs = [r for r in report["runs"] if r["status"] == "measured"]
    assert {(r["kind"], r["strategy"], r["mutators"]) for r in runs} == {
        (k, s, m) for k in ("young", "full") for s in ("copy", "move", "hybrid") for m in (0, 1)}
    assert all(r["verified"] for r in runs)
    for r in runs:
        if r["strategy"] == "copy":
            assert r["ratio_vs_copy_median"] == 1.0
        if r["kind"] == "young":
            assert r["key"].endswith("/young") and r["ratio_vs_full_median"] > 0
    assert report["config"]["gc"] == ["young", "full"]
    assert report["config"]["generations"] == {"old_fraction": 0.8, "mid_fraction": 0.05, "young_survival": 0.1}


def test_the_runner_executor_runs_young_plan_files(need_move, tmp_path):
    """`bench --runner --gc young,full`: compactor-runner runs the young plan's file too; both kinds verify, and a
    young MOVE maps the old generation back with MOVE."""
    out = tmp_path / "r.json"
    bench("--quick", "--heap", "8MiB", "--repeat", "1", "--quiet", "--strategies", "copy,move", "--mutators", "0",
          "--runner", "--gc", "young,full", "--json", str(out))
    runs = [r for r in json.loads(out.read_text())["runs"] if r["status"] == "measured"]
    assert {(r["kind"], r["strategy"]) for r in runs} == {(k, s) for k in ("young", "full") for s in ("copy", "move")}
    assert all(r["verified"] for r in runs)
    young_move = next(r for r in runs if (r["kind"], r["strategy"]) == ("young", "move"))
    assert young_move["generational"]["pages_mapped_back_move"] > 0


def test_generational_fields_are_consistent(young_full):
    """Per run: mapped back + compacted = every to-space page; young's freed bytes = used end - the young plan's
    post-compact end; ART's metric names carry the same numbers; the young plan's prefix is the old generation."""
    report, _, _ = young_full
    heap = report["heap"]
    gens, young_plan = heap["generations"], heap["young_plan"]
    used_end = gens["mid_end"] + gens["young_bytes"]
    for r in (r for r in report["runs"] if r["status"] == "measured"):
        g, art = r["generational"], r["art_metrics"]
        pages = g["pages_mapped_back_move"] + g["pages_mapped_back_copy"] + g["pages_compacted"]
        assert pages == r["pages"]["total"]
        k = "Young" if r["kind"] == "young" else "Full"
        assert art == {f"{k}GcScannedBytes": g["scanned_bytes"], f"{k}GcFreedBytes": g["freed_bytes"],
                       f"AppSlowPathDuring{k}Gc": g["app_slow_path_ms"]}
        if r["kind"] == "young":
            assert pages == young_plan["to_space_pages"]
            assert g["pages_mapped_back_move"] + g["pages_mapped_back_copy"] == young_plan["dense_prefix_pages"]
            assert g["freed_bytes"] == used_end - young_plan["post_compact_end"] > 0
            assert g["old_gen_end"] == gens["old_end"] and g["dirty_cards"] == gens["dirty_cards"]
            assert g["scanned_bytes"] >= r["live_bytes"] == young_plan["live_bytes"]
            if r["strategy"] == "copy":
                assert g["pages_mapped_back_move"] == 0
            if r["strategy"] == "move" and r["mutators"] == 0:
                assert g["pages_mapped_back_copy"] == 0
        else:
            assert g["old_gen_end"] == 0 and g["dirty_cards"] == 0


def test_text_csv_and_claim_name_both_kinds(young_full):
    """The text report has the young/full table, the CSV a kind column, the claims what MOVE buys in young ones."""
    report, rows, text = young_full
    assert "Young and full collections" in text and "move-in-young-collections" in text
    assert {(r["kind"], r["strategy"]) for r in rows} >= {("young", "move"), ("full", "move")}
    assert all(int(r["pages_compacted"]) > 0 for r in rows)
    claim = next(c for c in report["claims"] if c["id"] == "move-in-young-collections")
    assert claim["holds"] in ("yes", "direction only", "no") and "young collections MOVE took" in claim["verdict"]
    assert {c["id"] for c in report["claims"]} >= {"move-vs-copy", "copy-vs-move-alloc", "copy-overhead-share"}


@pytest.mark.parametrize(("args", "message"), [
    (["--gc", "young,full", "--device", "127.0.0.1:1"], "runs on this machine only"),
    (["--old-fraction", "0.5"], "add young to --gc"),
    (["--gc", "young", "--live", "0.3"], "--live does not apply"),
    (["--gc", "young", "--old-fraction", "0.9", "--mid-fraction", "0.1"], "leave the young generation"),
])
def test_young_runs_are_refused_where_they_cannot_run(args, message):
    """Young collections on a device (its executor pushes the full plan only) and generation
    flags without young collections are usage errors (status 2) naming why, before anything runs."""
    p = bench(*TINY, *args, check=False)
    assert p.returncode == 2 and message in p.stderr and not p.stdout


def test_sweep_old_share_axis(tmp_path, need_move):
    """`sweep --gc young` on a tiny grid: one heap per old share, share 0 a full collection, the others young,
    every cell verified, the JSON valid and the CSV tagged with the kind and share."""
    out, table = tmp_path / "s.json", tmp_path / "s.csv"
    p = bench("sweep", "--gc", "young", "--quick", "--heap", "4MiB", "--old-shares", "0,0.5", "--repeat", "1",
              "--strategies", "copy,move", "--quiet", "--json", str(out), "--csv", str(table))
    report = json.loads(out.read_text())
    jsonschema.validate(report, SWEEP_SCHEMA)
    cells = report["cells"]
    assert {(c["old_fraction"], c["kind"], c["strategy"]) for c in cells} == {
        (0.0, "full", "copy"), (0.0, "full", "move"), (0.5, "young", "copy"), (0.5, "young", "move")}
    assert all(c["verified"] for c in cells)
    young = [c for c in cells if c["kind"] == "young"]
    assert all(c["generational"]["pages_mapped_back_move"] + c["generational"]["pages_mapped_back_copy"] > 0
               for c in young)
    assert [d["old_fraction"] for d in report["old_share"]] == [0.0, 0.5]
    assert "Young sweep" in p.stdout
    with open(table) as f:
        assert {(r["kind"], r["old_fraction"]) for r in csv.DictReader(f)} == {("full", "0.0"), ("young", "0.5")}


def test_sweep_old_shares_need_young():
    """--old-shares without --gc young is a usage error naming the remedy."""
    p = bench("sweep", "--quick", "--old-shares", "0.5", check=False)
    assert p.returncode == 2 and "add --gc young" in p.stderr


@pytest.fixture(scope="module")
def lifetime(tmp_path_factory):
    require("move" in features(), "this kernel lacks UFFDIO_MOVE (Linux >= 6.8)")
    out = tmp_path_factory.mktemp("lifetime") / "l.json"
    p = bench("lifetime", "--heap", "8MiB", "--cycles", "20", "--quiet", "--json", str(out))
    return json.loads(out.read_text()), p.stdout


def test_lifetime_verifies_every_collection_and_mixes_kinds(lifetime):
    """20 cycles of COPY and MOVE on 8 MiB: every collection verified, young and full ones both in each lifetime,
    each kind with the reason ART's heuristic gives, the JSON valid."""
    report, text = lifetime
    jsonschema.validate(report, LIFETIME_SCHEMA)
    rows = report["cycles"]
    assert len(rows) == 40 and all(r["verified"] for r in rows)
    for s in ("copy", "move"):
        mine = [r for r in rows if r["strategy"] == s]
        assert [r["cycle"] for r in mine] == list(range(1, 21))
        assert mine[0]["kind"] == "young" and mine[1]["kind"] == "full"  # the first; no full collection ran yet
        d = report["strategies"][s]
        assert d["young"]["count"] > 0 and d["full"]["count"] > 0 and d["collections"] == 20
        for a, b in zip(mine, mine[1:]):
            if a["kind"] == "full" and "free space" not in b["why"]:
                assert b["kind"] == "young"  # after a full collection, a young one
        assert all(r["freed_bytes"] > 0 for r in mine)
    assert "Per strategy: the young/full mix" in text


def test_lifetime_forces_a_full_collection_when_the_free_space_is_short(tmp_path):
    """An epoch larger than the free space a young collection leaves forces full collections (the heuristic's
    memory rule: deterministic, whatever the timings)."""
    out = tmp_path / "l.json"
    bench("lifetime", "--heap", "8MiB", "--cycles", "4", "--alloc", "2MiB", "--strategies", "copy", "--quiet",
          "--json", str(out))
    rows = json.loads(out.read_text())["cycles"]
    assert [r["kind"] for r in rows] == ["young", "full", "full", "full"]
    assert all("cannot take the next epoch's allocation" in r["why"] for r in rows[1:])


def test_next_kind_follows_arts_heuristic():
    """young after full; young again while young throughput x 0.5 >= the mean full throughput; full when no full
    ran, when the young one is too slow, and when the free space cannot take the next epoch."""
    full = {"kind": "full", "freed_bytes": 100, "gc_thread_s": 1.0}
    assert next_kind([], 0, 10)[0] == "young"
    assert next_kind([full], 50, 10)[0] == "young"
    assert next_kind([full], 5, 10)[0] == "full"
    assert next_kind([{"kind": "young", "freed_bytes": 100, "gc_thread_s": 1.0}], 50, 10)[0] == "full"
    assert next_kind([full, {"kind": "young", "freed_bytes": 40, "gc_thread_s": 0.2}], 50, 10)[0] == "young"
    assert next_kind([full, {"kind": "young", "freed_bytes": 40, "gc_thread_s": 0.5}], 50, 10)[0] == "full"
