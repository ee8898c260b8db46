"""Mutator profiles in the bench and the sweep, the mutator view in every report, and the crossover (no timing
thresholds: structural facts and hand-made rows only)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from compactor import profiles
from compactor.bench import grid
from compactor.bench.config import BenchConfig
from compactor.bench.crossover import crossover, points
from compactor.bench.schema import SCHEMA, SWEEP_SCHEMA, SWEEP_SCHEMA_ID
from compactor.bench.types import Scenario

from conftest import bench

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--heap", "8MiB", "--repeat", "1", "--quiet", "--mutators", "1"]


def runs_by_profile(report: dict) -> dict:
    return {(r["strategy"], r["profile"]): r for r in report["runs"] if r["status"] == "measured" and r["mutators"]}


@pytest.fixture(scope="module")
def default_profiles_report():
    """A tiny bench with the default profiles (stress and app), copy and move, one mutator."""
    return json.loads(bench(*TINY, "--strategies", "copy,move", "--json", "-").stdout)


def test_profiles_apply_their_options():
    """A UI profile's runs count frames and an allocating profile's runs allocate new objects; stress does neither."""
    report = json.loads(bench(*TINY, "--strategies", "copy", "--mutator-profile", "stress,ui-60hz,alloc",
                              "--json", "-").stdout)
    runs = runs_by_profile(report)
    assert runs[("copy", "ui-60hz")]["mutator_view"]["frames"] > 0
    assert runs[("copy", "alloc")]["mutator_view"]["new_objects"] > 0
    assert runs[("copy", "alloc")]["mutator_view"]["alloc_failures"] == 0
    assert runs[("copy", "stress")]["mutator_view"]["frames"] == 0
    assert runs[("copy", "stress")]["mutator_view"]["new_objects"] == 0
    assert report["config"]["profile_options"]["alloc"] == {"alloc_rate": profiles.ALLOC_RATE}


def test_the_runner_executor_gets_the_profiles_options_as_flags():
    """With --runner, a profile's options reach compactor-runner: the UI run counts frames, the app run allocates."""
    report = json.loads(bench(*TINY, "--strategies", "copy", "--runner", "--mutator-profile", "ui-120hz,app",
                              "--json", "-").stdout)
    runs = runs_by_profile(report)
    assert report["config"]["executor"] == "runner"
    assert runs[("copy", "ui-120hz")]["mutator_view"]["frames"] > 0
    assert runs[("copy", "app")]["mutator_view"]["new_objects"] > 0


def test_raw_flags_override_a_profile():
    """--alloc-rate 0 turns the app profile's allocation off and keeps its think time."""
    report = json.loads(bench(*TINY, "--strategies", "copy", "--mutator-profile", "app", "--alloc-rate", "0",
                              "--json", "-").stdout)
    assert report["config"]["profile_options"]["app"] == {"think_ns": 100000, "think": "sleep", "alloc_rate": 0}
    assert runs_by_profile(report)[("copy", "app")]["mutator_view"]["new_objects"] == 0


@pytest.mark.parametrize("args", [["--mutator-profile", "stress,jogging"], ["sweep", "--profiles", "jogging"]])
def test_an_unknown_profile_is_a_usage_error_naming_the_choices(args):
    """An unknown profile exits 2 before anything runs, naming it and the known profiles."""
    p = bench(*args, check=False)
    assert p.returncode == 2
    assert "unknown mutator profile jogging; choose from" in p.stderr
    assert all(name in p.stderr for name in ("stress", "app", "sleep-100us", "ui-120hz", "busy-1us+alloc"))


def test_a_raw_flag_out_of_range_is_a_usage_error():
    """A raw mutator flag the core refuses (frame_hz above 1000) exits 2 with the core's range."""
    p = bench("--frame-hz", "5000", "--quiet", check=False)
    assert p.returncode == 2 and "frame_hz must lie in [0, 1000]" in p.stderr


def test_profiles_cover_the_issues_axis_and_name_the_app_like_one():
    """Stress, busy and sleep pauses of 1-1000 us, ui at 60 and 120 Hz, each with allocation on and off; app is one."""
    base = ["stress"] + [f"{h}-{us}us" for h in ("busy", "sleep") for us in (1, 10, 100, 1000)] + ["ui-60hz",
                                                                                                   "ui-120hz"]
    assert set(profiles.PROFILES) == set(base) | {f"{b}+alloc" for b in base}
    assert profiles.options("sleep-10us") == {"think_ns": 10000, "think": "sleep"}
    assert profiles.options("busy-1000us") == {"think_ns": 1000000, "think": "busy"}
    assert profiles.options("ui-120hz")["frame_hz"] == 120
    assert profiles.options("app") == {"think_ns": 100000, "think": "sleep", "alloc_rate": profiles.ALLOC_RATE}
    assert profiles.options_for("app", 0, {"hops": 2}) == {"hops": 2}  # no mutators: no app behaviour


def test_the_docs_list_every_profile_as_the_code_defines_it():
    """docs/mutator-profiles.md holds profiles.markdown() verbatim."""
    assert profiles.markdown() in (ROOT / "docs" / "mutator-profiles.md").read_text()


def test_the_default_bench_adds_the_app_like_scenario_to_every_loaded_one():
    """By default each strategy and mutator count > 0 runs the stress loop and the app profile; 0 mutators once."""
    cfg = BenchConfig(mutators=(0, 1))
    assert cfg.profiles == ("stress", "app")
    sc = cfg.scenarios()
    assert Scenario("move", "sigbus", 1, "app") in sc and Scenario("move", "sigbus", 1, "stress") in sc
    assert [s for s in sc if s.strategy == "move" and s.mutators == 0] == [Scenario("move", "sigbus", 0)]
    assert Scenario("move", "sigbus", 1).key == "move/sigbus/1"  # keys of reports before profiles stay valid
    assert Scenario("move", "sigbus", 1, "app").key == "move/sigbus/1/app"


def test_claim_1_reports_the_stress_and_the_app_like_scenario_and_the_crossover(default_profiles_report):
    """The move-vs-copy verdict measures the stress loop, then names the app-like result and the crossover."""
    claim = next(c for c in default_profiles_report["claims"] if c["id"] == "move-vs-copy")
    assert {(s["profile"], s["mutators"]) for s in claim["by_scenario"]} >= {("stress", 1), ("app", 1)}
    assert claim["measured"] == next(s["reduction"] for s in claim["by_scenario"]
                                     if s["profile"] == "stress" and s["mutators"] == 1 and s["faults"] == "sigbus")
    v = claim["verdict"]
    assert "in the stress loop" in v and "app-like" in v and "Where MOVE stops winning" in v
    assert claim["crossover"]["state"] in ("crossed", "move wins throughout", "move loses throughout", "reversed")
    assert {p["profile"] for p in claim["crossover"]["points"]} == {"stress", "app"}


def test_claim_1_says_what_a_sleeping_thread_costs_move_from_hybrids_prices():
    """With hybrid priced, the move-vs-copy verdict names the MOVEs after each sleep that still interrupt the
    sleeping thread's CPU, as many as the prices hybrid measured say."""
    report = json.loads(bench(*TINY, "--strategies", "copy,move,hybrid", "--json", "-").stdout)
    verdict = next(c for c in report["claims"] if c["id"] == "move-vs-copy")["verdict"]
    hybrid = next(r for r in report["runs"] if r["strategy"] == "hybrid" and r["mutators"] == 1)
    owed = hybrid["priced_policy"][0]["prices"]["shootdowns_after_sleep"]
    if owed > 0:
        assert f"the shootdowns of the first {owed:g} MOVEs after each sleep began" in verdict, verdict
    else:
        assert "A thread asleep between accesses costs MOVE no shootdown here" in verdict, verdict


def test_every_run_reports_its_profile_and_mutator_view_and_the_json_validates(default_profiles_report):
    """The report validates against the schema; each measured run has a profile, a mutator view and its fault rate."""
    jsonschema.validate(default_profiles_report, SCHEMA)
    for r in default_profiles_report["runs"]:
        if r["status"] == "measured" and r["strategy"] != "stw":
            assert r["profile"] in ("stress", "app")
            assert len(r["mutator_view_per_repetition"]) == r["repetitions"]
            if r["mutators"]:
                assert 0 <= r["mutator_view"]["pages_resolved_share"] <= 1
                assert r["mutator_pages_per_ms"] >= 0


def test_the_text_report_shows_the_profile_and_the_mutator_view():
    """The console report has a profile column and the mutator-view table."""
    out = bench(*TINY, "--strategies", "copy").stdout
    assert "Mutator view (medians)" in out and "longest stall us" in out
    assert re.search(r"copy\s+│ sigbus │ 1\s+│ app", out)


def test_the_sweep_profile_axis_yields_rows_per_profile(tmp_path):
    """--profiles gives cells per profile, the CSV a profile column, the JSON validates, the crossover one group."""
    from compactor.bench.sweep import main

    out = tmp_path / "s"
    rc = main(["--heap", "4MiB", "--live", "0.5", "--mutators", "0,1", "--batch", "64", "--strategies", "move",
               "--profiles", "stress,sleep-100us,ui-120hz", "--repeat", "1", "--quiet", "--json", f"{out}.json",
               "--csv", f"{out}.csv"])
    assert rc == 0
    rep = json.loads(Path(f"{out}.json").read_text())
    jsonschema.validate(rep, SWEEP_SCHEMA)
    assert rep["schema"] == SWEEP_SCHEMA_ID and rep["config"]["grid"] == "custom"
    cells = {(c["mutators"], c["profile"], c["strategy"]) for c in rep["cells"]}
    assert cells == {(0, "stress", s) for s in ("copy", "move")} | {
        (1, p, s) for p in ("stress", "sleep-100us", "ui-120hz") for s in ("copy", "move")}
    assert all(c["verified"] for c in rep["cells"])
    (g,) = rep["crossover"]["groups"]
    assert g["mutators"] == 1 and g["profiles"] == 3 and len(g["points"]) == 3
    header, *rows = Path(f"{out}.csv").read_text().splitlines()
    assert "profile" in header.split(",") and "mutator_pages_resolved_share" in header.split(",")
    assert len(rows) == len(rep["cells"])


def test_the_default_sweep_grid_varies_profiles_with_mutators_and_full_is_the_product():
    """The default runs every profile at 1 and 2 mutators and the structure axes under stress; --full is the product."""
    cells = grid.cells(grid.DEFAULT["planes"])
    assert {p for _, m, _, p in cells if m} == set(profiles.PROFILES)
    assert {(m, p) for f, m, b, p in cells if (f, b) == (0.5, 64) and m} == {
        (m, p) for m in (1, 2) for p in profiles.PROFILES}
    assert {p for f, m, b, p in cells if (f, b) != (0.5, 64)} == {"stress"}
    assert len(cells) == len(set(cells))
    full = grid.cells(grid.FULL["planes"])
    (pl,) = grid.FULL["planes"]
    with_mutators = [m for m in pl["mutators"] if m]
    assert len(full) == len(pl["live"]) * len(pl["batch"]) * (1 + len(with_mutators) * len(profiles.PROFILES))


def _row(profile, strategy, ratio, rate):
    return {"profile": profile, "strategy": strategy, "ratio_vs_copy_median": ratio, "mutator_pages_per_ms": rate}


def test_the_crossover_interpolates_between_the_neighbouring_profiles():
    """MOVE wins at 1 and 5 pages/ms and loses at 10: the crossover is interpolated at 7.5 pages/ms."""
    rows = [_row("a", "copy", 1.0, 2.0), _row("a", "move", 0.6, 1.0), _row("a", "hybrid", 0.9, 1.0),
            _row("b", "move", 0.9, 4.0), _row("b", "hybrid", 0.8, 5.0),  # hybrid is b's best: its rate counts
            _row("c", "move", 1.2, 10.0), _row("c", "hybrid", 1.3, 9.0)]
    pts = points(rows)
    assert [(p["profile"], p["strategy"]) for p in pts] == [("a", "move"), ("b", "hybrid"), ("c", "move")]
    assert pts[0]["copy_pages_per_ms"] == 2.0
    c = crossover(pts)
    assert c["state"] == "crossed" and c["between"] == ["b", "c"] and c["crossings"] == 1
    assert c["threshold_pages_per_ms"] == pytest.approx(5.0 + 0.2 * (10.0 - 5.0) / 0.4)
    assert "fewer than about 7.5 pages per ms" in c["text"]


@pytest.mark.parametrize(("ratios", "state"), [((0.5, 0.7, 0.9), "move wins throughout"),
                                               ((1.1, 1.2, 1.5), "move loses throughout")])
def test_the_crossover_says_not_crossed_when_move_never_changes_side(ratios, state):
    """When MOVE wins (or loses) at every profile there is no threshold and the text says so."""
    c = crossover(points([_row(p, "move", r, x) for p, r, x in zip("abc", ratios, (1.0, 3.0, 9.0))]))
    assert c["state"] == state and c["threshold_pages_per_ms"] is None
    assert c["text"].startswith("not crossed in this grid")


def test_the_crossover_names_the_first_win_to_loss_change_when_not_monotone():
    """Wins, loses, wins again: the first change is named and the text says the ratio is not monotone."""
    c = crossover(points([_row("a", "move", 0.5, 1.0), _row("b", "move", 1.5, 2.0), _row("c", "move", 0.5, 3.0)]))
    assert c["state"] == "crossed" and c["between"] == ["a", "b"] and c["crossings"] == 2
    assert "not monotone" in c["text"]


def test_with_noise_the_crossover_named_separates_the_profiles_best():
    """Win, loss, win, win, loss, loss: the change between the 4th and 5th profile has only one profile astray."""
    ratios = (0.5, 1.2, 0.6, 0.7, 1.1, 1.3)
    c = crossover(points([_row(p, "move", r, float(x)) for x, (p, r) in enumerate(zip("abcdef", ratios), 1)]))
    assert c["state"] == "crossed" and c["between"] == ["d", "e"] and c["on_the_wrong_side"] == 1
    assert c["threshold_pages_per_ms"] == pytest.approx(4.0 + 0.3 / 0.4)
