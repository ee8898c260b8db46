"""The options table (native/include/compactor/config_options.def) is the one definition of every option: each
surface that lists options is generated from it, and each test here fails when a surface drifts from it."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess

import pytest

import compactor
from compactor import collector
from compactor.bench.executors import runner_flags, runner_path
from compactor.options import markdown, option_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = [o["name"] for o in option_table()]

# A value other than the default for every option, valid on this machine (the runner and Python must agree).
NON_DEFAULT = {"strategy": "hybrid", "faults": "thread", "mutators": 3, "access": "hot-set", "hops": 5,
               "write_fraction": 0.25, "batch": 16, "move_min_run": 8, "claim_ahead": True, "backoff": "futex",
               "gc_cpu": 0, "mutator_cpus": [0], "release_chunk": 1 << 22, "swapped": 0.5, "seed": 7,
               "watchdog_seconds": 2.5, "user_mode_only": False, "max_samples": 1000, "inject_errno": 11,
               "inject_fraction": 0.125, "stall_seconds": 0.5, "late_access_seconds": 0.25, "think_ns": 1000,
               "think": "busy", "frame_hz": 60.0, "frame_duty": 0.5, "alloc_rate": 1 << 20, "tlab": 1 << 16,
               "pre_pause_ms": 2.5, "signal": "sigusr1", "signal_hz": 250.0, "corrupt_new_object": True,
               "trace_events": 4096}


@pytest.fixture(scope="module")
def plan_path(tmp_path_factory):
    heap = compactor.Heap.generate(compactor.HeapSpec(size="1MiB", seed=1))
    path = tmp_path_factory.mktemp("plan") / "h.plan"
    compactor.plan(heap).save(path)
    return str(path)


def print_config(plan_path, flags):
    p = subprocess.run([runner_path(), plan_path, "--print-config", *flags], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_python_config_has_one_property_per_option_and_the_alias():
    """CollectorConfig's attributes are the table's names plus the watchdog alias, and collect() takes them all."""
    attrs = {a for a in dir(collector.CollectorConfig) if not a.startswith("_")} - {"validate", "to_json"}
    assert attrs == set(NAMES) | {"watchdog"}
    assert set(collector.OPTIONS) == attrs


def test_the_test_knows_every_option():
    """NON_DEFAULT covers the table, so the round trips below cover every option."""
    assert set(NON_DEFAULT) == set(NAMES)


def test_table_defaults_are_the_configs_defaults():
    """The table's default text is what a fresh CollectorConfig holds; collect() and the core agree (stw)."""
    cfg = collector.CollectorConfig()
    got = json.loads(cfg.to_json())
    assert list(got) == NAMES
    for o in option_table():
        value = getattr(cfg, o["name"])
        assert got[o["name"]] == value, o["name"]
    assert cfg.strategy == "stw" and collector.collect.__defaults__[0] == "stw"


def test_the_runner_accepts_every_option_through_the_generated_flags(plan_path):
    """runner_flags() of a non-default value of every option gives the runner the same configuration as Python."""
    cfg = collector.make_config(**NON_DEFAULT)
    assert print_config(plan_path, runner_flags(NON_DEFAULT)) == json.loads(cfg.to_json())


def test_the_runner_with_no_flags_has_the_cores_defaults(plan_path):
    """Nothing given: the runner's configuration is a fresh CollectorConfig's."""
    assert print_config(plan_path, []) == json.loads(collector.CollectorConfig().to_json())


def test_bool_flags_negate_and_watchdog_is_an_alias(plan_path):
    """--no-user-mode-only clears a bool that defaults to true; --watchdog sets watchdog_seconds."""
    got = print_config(plan_path, ["--no-user-mode-only", "--watchdog", "3"])
    assert got["user_mode_only"] is False and got["watchdog_seconds"] == 3


def test_runner_usage_lists_every_flag():
    """--help names every option's flag with its default."""
    p = subprocess.run([runner_path(), "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    for o in option_table():
        assert re.search(rf"^  {re.escape(o['flag'])}\b.*\(default ", p.stdout, re.M), o["flag"]


def test_make_config_docstring_names_every_option():
    """make_config's documentation lists the table (the positional three are its parameters)."""
    doc = collector.make_config.__doc__ or ""
    missing = [n for n in NAMES if n not in ("strategy", "faults", "mutators") and n not in doc]
    assert not missing


def test_readme_options_table_is_the_generated_one():
    """README.md carries exactly `python -m compactor options` (regenerate it with that command)."""
    readme = (ROOT / "README.md").read_text()
    assert markdown() in readme


def test_stub_lists_every_option():
    """compactor/_native.pyi declares every property of CollectorConfig."""
    stub = (ROOT / "compactor" / "_native.pyi").read_text()
    body = stub.split("class CollectorConfig:")[1].split("\ndef ")[0]
    declared = set(re.findall(r"^    (\w+): ", body, re.M))
    assert declared == set(NAMES) | {"watchdog"}
