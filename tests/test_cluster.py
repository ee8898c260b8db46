"""Sweeps and benches on a Dask cluster (compactor.bench.cluster): the same cells as a local sweep, cells split over
workers, a worker killed mid-cell has its cell retried and named, and sweeps of two machines lined up by kernel.

Every cluster here runs on this machine (LocalCluster worker processes): the mechanism, not a performance
measurement. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jsonschema
import pytest

from compactor.bench.schema import SCHEMA, SWEEP_SCHEMA, SWEEP_SCHEMA_ID

from conftest import bench, run_python

pytest.importorskip("distributed", reason="the cluster extra: pip install 'compactor[cluster]'")

TINY_GRID = ["--heap", "4MiB", "--mutators", "0", "--batch", "64", "--strategies", "copy,move", "--repeat", "1",
             "--quiet"]


def cells_of(report: dict) -> set:
    return {(c["live_fraction"], c["mutators"], c["batch"], c["profile"], c["strategy"]) for c in report["cells"]}


@pytest.mark.slow
def test_a_cluster_sweep_quick_gives_the_cells_of_a_local_sweep_quick(tmp_path):
    """sweep --quick over a LocalCluster of one worker has the local sweep's cells, each verified, from one machine."""
    local = json.loads(bench("sweep", "--quick", "--quiet", "--json", "-").stdout)
    out = tmp_path / "c.json"
    p = bench("sweep", "--quick", "--quiet", "--json", str(out), "--cluster", "local")
    fleet = json.loads(out.read_text())
    jsonschema.validate(fleet, SWEEP_SCHEMA)
    assert fleet["schema"] == SWEEP_SCHEMA_ID and cells_of(fleet) == cells_of(local)
    assert [c["strategy"] for c in fleet["cells"]] == [c["strategy"] for c in local["cells"]]
    assert all(c["verified"] for c in fleet["cells"]) and all(c["verified"] for c in local["cells"])
    assert all(c["ratio_vs_copy_median"] is not None for c in fleet["cells"])  # COPY of the same cell is there
    (machine,) = fleet["machines"]
    assert {c["ran_on"] for c in fleet["cells"]} == {machine} and fleet["retried"] == fleet["failed"] == []
    env = fleet["machines"][machine]
    assert env["kernel"] == local["environment"]["kernel"] and env["cpu_model"] and env["hostname"]
    assert fleet["config"]["cluster"].startswith("local (1 worker") and f"{machine}:" in p.stdout


def test_two_workers_split_the_cells_and_keep_each_cells_strategies_on_one_machine(tmp_path):
    """With two worker processes (not a performance measurement) the cells split, a cell's strategies on one."""
    out = tmp_path / "c.json"
    bench("sweep", *TINY_GRID, "--live", "0.2,0.3,0.4,0.5,0.6,0.7", "--json", str(out), "--cluster", "local:2")
    rep = json.loads(out.read_text())
    jsonschema.validate(rep, SWEEP_SCHEMA)
    assert len(rep["machines"]) == 2 and {c["ran_on"] for c in rep["cells"]} == set(rep["machines"])
    per_cell: dict = {}
    for c in rep["cells"]:
        per_cell.setdefault(c["live_fraction"], set()).add(c["ran_on"])
    assert len(per_cell) == 6 and all(len(m) == 1 for m in per_cell.values())


# A LocalCluster of two worker processes (under nannies, which restart a killed worker; a task may lose
# ALLOWED_FAILURES workers) that prints its address, then kills the worker process of the first attempt the sweep
# logs (the sweep's attempt events carry the pid), and of the next KILLS - 1 attempts of that cell; prints the
# pids, the workers and the cell, and waits for stdin to close.
KILLER = textwrap.dedent("""
    import logging, os, signal, sys, time
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, resources={"machine": 1},
                           dashboard_address=None, silence_logs=logging.CRITICAL,
                           scheduler_kwargs={"allowed_failures": ALLOWED_FAILURES})
    client = Client(cluster)
    print(cluster.scheduler_address, flush=True)
    deadline, killed, key = time.monotonic() + 120, [], None
    while time.monotonic() < deadline and len(killed) < KILLS:
        events = [e for t, es in client.get_events().items() if t.startswith("compactor-attempts-") for _, e in es]
        for e in events:
            key = key or e["key"]
            if e["key"] == key and e["pid"] not in [k["pid"] for k in killed] and len(killed) < KILLS:
                os.kill(e["pid"], signal.SIGKILL)
                killed.append(e)
        time.sleep(0.02)
    print(";".join(f"{k['pid']},{k['worker']}" for k in killed), key, flush=True)
    sys.stdin.read()
    client.close()
    cluster.close()
""")


def sweep_under_killer(tmp_path, kills: int, allowed_failures: int, *args: str):
    """The sweep (args) on the KILLER's cluster: its exit, the report, the killed (pid, worker)s and the cell."""
    script = KILLER.replace("ALLOWED_FAILURES", str(allowed_failures)).replace("KILLS", str(kills))
    helper = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd="/")
    try:
        address = helper.stdout.readline().strip()
        assert address.startswith("tcp://"), address
        out = tmp_path / "c.json"
        p = bench("sweep", "--heap", "64MiB", "--mutators", "0", "--batch", "1", "--strategies", "copy,move",
                  "--repeat", "3", "--quiet", "--json", str(out), "--cluster", address, *args, check=False)
        pids, key = helper.stdout.readline().split()
    finally:
        helper.stdin.close()
        try:
            helper.wait(timeout=60)
        finally:
            helper.kill()
            helper.stdout.close()
    killed = [(int(k.split(",")[0]), k.split(",")[1]) for k in pids.split(";")]
    return p, json.loads(out.read_text()), killed, key


@pytest.mark.slow
def test_a_worker_killed_mid_cell_has_its_cell_retried_and_reported(tmp_path):
    """A worker process killed (SIGKILL) while it runs a cell: the cell runs again, and the report names it."""
    p, rep, killed, key = sweep_under_killer(tmp_path, 1, 2, "--live", "0.5")
    assert p.returncode == 0, p.stderr
    jsonschema.validate(rep, SWEEP_SCHEMA)
    (r,) = rep["retried"]
    assert r["key"] == key and r["attempts"] == 2 and rep["failed"] == []
    assert [(d["pid"], d["worker"]) for d in r["died"]] == killed
    assert {c["strategy"] for c in rep["cells"]} == {"copy", "move"} and all(c["verified"] for c in rep["cells"])
    assert f"retried: cell {key}: its worker died" in p.stdout and f"pid {killed[0][0]}" in p.stdout


@pytest.mark.slow
def test_a_cell_whose_worker_dies_on_every_attempt_is_reported_failed_and_the_sweep_exits_1(tmp_path):
    """Two attempts of a cell killed where the scheduler allows one lost worker: failed, named, exit 1, no hang."""
    p, rep, killed, key = sweep_under_killer(tmp_path, 2, 1, "--live", "0.25,0.5")
    assert p.returncode == 1 and f"cell {key} failed: its worker died on every attempt" in " ".join(p.stderr.split())
    jsonschema.validate(rep, SWEEP_SCHEMA)
    (f,) = rep["failed"]
    assert f["key"] == key and f["attempts"] == 2 and [(d["pid"], d["worker"]) for d in f["died"]] == killed
    assert {(c["live_fraction"], c["strategy"]) for c in rep["cells"]} == {
        (lv, s) for lv in (0.25, 0.5) if lv != f["live_fraction"] for s in ("copy", "move")}


def test_sweeps_of_two_kernels_line_up_by_kernel_in_the_report_and_in_compare(tmp_path):
    """Two machines' sweeps merged (compare --json) group by kernel; compare prints the grid per kernel."""
    a, b, merged = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "m.json"
    bench("sweep", *TINY_GRID, "--live", "0.5", "--json", str(a))
    bench("sweep", *TINY_GRID, "--live", "0.5", "--json", str(b), "--seed", "2")
    # Honestly: both ran here; the second is rewritten as if a machine "lab-b" with another kernel had run it.
    rep = json.loads(b.read_text())
    ((label, env),) = rep["machines"].items()
    env = dict(env, kernel="6.1.0-lab", hostname="lab-b", model="lab-b")
    rep["environment"], rep["machines"] = env, {"lab-b": env}
    for c in rep["cells"]:
        c["ran_on"] = "lab-b"
    b.write_text(json.dumps(rep))
    p = bench("compare", str(a), str(b), "--json", str(merged))
    m = json.loads(merged.read_text())
    jsonschema.validate(m, SWEEP_SCHEMA)
    groups = m["by_kernel"]["groups"]
    assert [g["kernel"] for g in groups] == [json.loads(a.read_text())["environment"]["kernel"], "6.1.0-lab"]
    assert groups[1]["machines"] == ["lab-b"] and groups[0]["machines"] == [label]
    assert all(len(r["median"]) == 2 and None not in r["median"] for r in m["by_kernel"]["rows"])
    assert len(m["by_kernel"]["rows"]) == 2 and {c["ran_on"] for c in m["cells"]} == {label, "lab-b"}
    assert "Sweeps side by side by kernel" in p.stdout and "Linux 6.1.0-lab" in p.stdout
    p = bench("compare", str(a), str(a), str(b))
    assert "[2] Linux 6.1.0-lab" in p.stdout


@pytest.mark.slow
def test_the_bench_on_a_cluster_tags_each_comparison_with_its_machine(tmp_path):
    """bench --cluster local: every run measured, verified and tagged; a comparison's strategies on one machine."""
    rep = json.loads(bench("--quick", "--heap", "8MiB", "--repeat", "1", "--quiet", "--strategies", "copy,move",
                           "--mutators", "0,1", "--json", "-", "--cluster", "local").stdout)
    jsonschema.validate(rep, SCHEMA)
    assert {r["key"] for r in rep["runs"]} == {f"{s}/sigbus/{m}" for s in ("copy", "move") for m in (0, 1)} | {
        f"{s}/sigbus/1/app" for s in ("copy", "move")}
    assert all(r["verified"] and r["ran_on"] in rep["machines"] for r in rep["runs"])
    assert all(r["ratio_vs_copy_median"] is not None for r in rep["runs"] if r["strategy"] == "move")


def test_the_cluster_without_distributed_names_the_extra_to_install():
    """--cluster without Dask distributed: exit 2 and the pip command, nothing measured."""
    p = run_python("""
        import sys
        sys.modules["distributed"] = None  # as if the cluster extra were not installed
        from compactor.bench.cli import main
        sys.exit(main(["sweep", "--heap", "4MiB", "--quiet", "--cluster", "local"]))
    """)
    assert p.returncode == 2 and "pip install 'compactor[cluster]'" in " ".join(p.stderr.split()) and p.stdout == ""


def test_a_device_sweep_without_device_workers_fails_at_once_naming_the_worker_command():
    """--cluster-devices on a cluster without device=1 workers: exit 2 with the worker command, no wait."""
    p = bench("sweep", *TINY_GRID, "--live", "0.5", "--cluster", "local", "--cluster-devices", check=False)
    assert p.returncode == 2 and "machine=1,device=1" in p.stderr and "COMPACTOR_DEVICE_SERIAL" in p.stderr
    assert p.stdout == ""  # nothing measured
