"""Sweeps and benches on a fleet through Dask distributed (`pip install 'compactor[cluster]'`).

Each sweep cell (or bench scenario group: the strategies of one comparison) is one task that needs the resource
`machine=1`; workers started with `dask worker tcp://HOST:8786 --resources machine=1 --nthreads 1` run one at a
time, so a measurement runs alone on its machine and the strategies of a cell stay interleaved on one machine. A
task runs the cell with the worker's installed compactor (compactor.bench.cell.run_cell, as the local sweep does)
and returns its rows with the machine's environment. A worker that owns a phone advertises `device=1` too and
names its phone in COMPACTOR_DEVICE_SERIAL; a device sweep's tasks need `device=1` and run through compactor-runner
on the phone (compactor.bench.executors.DeviceExecutor).

Each attempt of a task logs an event (the worker's address and process) on the scheduler before it measures; a
result delivered by another process than an earlier attempt's means that attempt's worker died and Dask ran the
task again: the cell is reported as retried, with the worker that died. Attempts are bounded (`allowed_failures`
on a LocalCluster this module starts, and here: a task whose attempts exceed the bound is cancelled); a cell that
failed on every attempt is reported as failed."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .cell import describe, run_cell
from .machines import machine_label
from .types import BenchError

INSTALL = "pip install 'compactor[cluster]'"
DEVICE_SERIAL_ENV = "COMPACTOR_DEVICE_SERIAL"  # a device worker's phone: host:port (TCP) or a USB serial
ALLOWED_FAILURES = 2  # a task may lose this many workers; the next loss fails its cell
NO_WORKER_TIMEOUT_S = 120.0  # a cluster without a worker that can run the remaining tasks for this long fails them


def require_distributed() -> Any:
    """The distributed module, or BenchError (status 2) naming the command that installs it."""
    try:
        import distributed
    except ImportError:
        raise BenchError(f"--cluster needs Dask distributed, which is not installed here: {INSTALL}", 2) from None
    return distributed


def resources(device: bool) -> Dict[str, int]:
    """What a task needs: a whole machine, and its phone for a device run."""
    return {"machine": 1, "device": 1} if device else {"machine": 1}


def worker_command(address: str, device: bool) -> str:
    if device:
        return (f"{DEVICE_SERIAL_ENV}=SERIAL dask worker {address} --resources 'machine=1,device=1' "
                "--nthreads 1")
    return f"dask worker {address} --resources machine=1 --nthreads 1"


@contextlib.contextmanager
def connect(address: str, allowed_failures: int = ALLOWED_FAILURES) -> Iterator[Tuple[Any, str]]:
    """A client of the cluster at `address` (tcp://HOST:8786), or of a LocalCluster started here for "local"
    (one worker process, one thread, resources machine=1; "local:N": N workers, two processes on one machine
    test the mechanism and are not a performance measurement), closed on the way out (errors and Ctrl-C too).
    Yields the client and the cluster's name for the report."""
    distributed = require_distributed()
    if address == "local" or address.startswith("local:"):
        try:
            n = int(address.partition(":")[2] or 1)
            if n < 1:
                raise ValueError
        except ValueError:
            raise BenchError(f"--cluster {address}: expected local or local:N with N >= 1 workers", 2) from None
        import logging

        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           resources={"machine": 1}, dashboard_address=None,
                                           silence_logs=logging.ERROR,
                                           scheduler_kwargs={"allowed_failures": allowed_failures})
        try:
            with distributed.Client(cluster) as client, _reported(address):
                yield client, f"local ({n} worker{'s' if n > 1 else ''} on {platform.node()})"
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as e:
        raise BenchError(f"--cluster {address}: cannot reach the Dask scheduler there ({e}); start one with "
                         "`dask scheduler` or use --cluster local", 2) from None
    try:
        with _reported(address):
            yield client, address
    finally:
        client.close()


@contextlib.contextmanager
def _reported(address: str) -> Iterator[None]:
    """Ctrl-C and a lost scheduler as BenchError (the tasks are cancelled and the cluster closed on the way out)."""
    try:
        yield
    except KeyboardInterrupt:
        raise BenchError("interrupted (Ctrl-C): the cluster's remaining tasks were cancelled", 130) from None
    except OSError as e:
        raise BenchError(f"--cluster {address}: lost the Dask scheduler ({e})", 1) from None


def _capable(client: Any, need: Dict[str, int]) -> List[str]:
    """The workers that hold every resource of `need`."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return [a for a, w in workers.items() if all((w.get("resources") or {}).get(k, 0) >= v for k, v in need.items())]


def _attempt(topic: str, key: str) -> Any:
    """Logs this attempt (worker address, process) on the scheduler; returns the worker."""
    from distributed import get_worker

    w = get_worker()
    w.log_event(topic, {"key": key, "worker": w.address, "name": str(w.name), "pid": os.getpid(),
                        "host": platform.node()})
    return w


def _device_serial(w: Any, device: bool) -> Optional[str]:
    if not device:
        return None
    serial = os.environ.get(DEVICE_SERIAL_ENV)
    if not serial:
        raise BenchError(f"worker {w.name} advertises device=1 but {DEVICE_SERIAL_ENV} is not set in its "
                         "environment: start it as " + worker_command(w.scheduler.address, True), 2)
    return serial


def _tag(env: dict, w: Any) -> str:
    """The machine label of a worker's result; the environment learns the worker's host and address."""
    env.update(worker=w.address, worker_host=platform.node())
    return machine_label(env, str(w.name))


def sweep_cell_task(topic: str, key: str, heap_bytes: int, cell: tuple, strategies: tuple, repeat: int, faults: str,
                    seed: int, options: dict, device: bool) -> dict:
    """A cluster task: one sweep cell on this worker's machine (or its phone)."""
    w = _attempt(topic, key)
    out = run_cell(heap_bytes, tuple(cell), tuple(strategies), repeat, faults, seed, options,
                   _device_serial(w, device))
    out.update(machine=_tag(out["environment"], w), worker=w.address, pid=os.getpid())
    return out


def bench_group_task(topic: str, key: str, cfg: Any, device: bool) -> dict:
    """A cluster task: the bench's scenarios of one comparison (every strategy of one fault mode, mutator count and
    profile, interleaved) on this worker's machine (or its phone)."""
    from .suite import run_suite

    w = _attempt(topic, key)
    serial = _device_serial(w, device)
    if serial:
        cfg = dataclasses.replace(cfg, device=serial)
    report = run_suite(cfg)
    for r in report["runs"]:
        r.pop("_samples", None)  # the fault-latency samples stay on the worker (percentiles are in the run)
    return {"report": report, "environment": report["environment"], "machine": _tag(report["environment"], w),
            "worker": w.address, "pid": os.getpid()}


def _attempts(client: Any, topic: str) -> Dict[str, List[dict]]:
    out: Dict[str, List[dict]] = {}
    for _, msg in client.get_events(topic):
        out.setdefault(msg["key"], []).append(msg)
    return out


def run_tasks(client: Any, tasks: List[Tuple[str, Callable, tuple]], need: Dict[str, int], address: str,
              tick: Callable[[str, int, int], None], allowed_failures: int = ALLOWED_FAILURES,
              no_worker_timeout: float = NO_WORKER_TIMEOUT_S) -> Tuple[Dict[str, dict], List[dict], List[dict]]:
    """Submits each task (key, function, arguments after the topic and key) needing `need`, and collects the results
    as they complete. Returns the results by key, the retried tasks and the failed ones (each with its attempts and
    the workers that died under it)."""
    import distributed

    if not _capable(client, need):
        wanted = ",".join(f"{k}={v}" for k, v in need.items())
        raise BenchError(f"no worker of the cluster at {address} offers the resources {wanted}; start workers with: "
                         f"{worker_command(client.scheduler.address, 'device' in need)}", 2)
    topic = f"compactor-attempts-{uuid.uuid4().hex}"
    futures = {client.submit(fn, topic, key, *args, key=f"compactor-{key}-{topic[-8:]}", resources=need,
                             pure=False): key for key, fn, args in tasks}
    results: Dict[str, dict] = {}
    failed: Dict[str, str] = {}
    pending = set(futures)
    alone_since: Optional[float] = None
    total = len(tasks)
    tick(f"0/{total} submitted to {address}", 0, total)
    try:
        while pending:
            try:
                done, pending = distributed.wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
            except (TimeoutError, distributed.TimeoutError):
                done = set()
            for fut in done:
                key = futures[fut]
                if fut.status == "finished":
                    results[key] = fut.result()
                    tick(f"{key} from {results[key]['machine']}", len(results) + len(failed), total)
                elif fut.status == "error":
                    exc = fut.exception()
                    if isinstance(exc, distributed.KilledWorker):
                        failed[key] = "its worker died on every attempt"
                    else:
                        failed[key] = f"{type(exc).__name__}: {exc}"
                else:
                    failed[key] = f"task {fut.status}"
            if not pending:
                break
            attempts = _attempts(client, topic)
            for fut in list(pending):
                if len(attempts.get(futures[fut], [])) > allowed_failures + 1:
                    fut.cancel()
                    pending.discard(fut)
                    failed[futures[fut]] = (f"its worker died on every attempt (cancelled at attempt "
                                            f"{allowed_failures + 2})")
            if _capable(client, need):
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > no_worker_timeout:
                for fut in pending:
                    fut.cancel()
                    failed[futures[fut]] = f"no worker with {need} for {no_worker_timeout:.0f} s"
                pending = set()
    finally:
        for fut in pending:  # an error or Ctrl-C here: nothing is left running for this client
            fut.cancel()
    attempts = _attempts(client, topic)
    retried: List[dict] = []
    failures: List[dict] = []
    for key, res in results.items():
        dead = [a for a in attempts.get(key, []) if (a["worker"], a["pid"]) != (res["worker"], res["pid"])]
        if dead:
            retried.append({"key": key, "attempts": len(dead) + 1, "died": [_who(a) for a in dead],
                            "delivered_by": res["machine"]})
    for key, reason in failed.items():
        failures.append({"key": key, "reason": reason, "attempts": len(attempts.get(key, [])),
                         "died": [_who(a) for a in attempts.get(key, [])]})
    return results, retried, failures


def _who(attempt: dict) -> dict:
    return {"worker": attempt["worker"], "name": attempt["name"], "host": attempt["host"], "pid": attempt["pid"]}


def cell_key(cell: tuple) -> str:
    return describe(cell).replace(" ", ",")


def run_sweep_cells(address: str, heap_bytes: int, cells: List[tuple], strategies: tuple, repeat: int, faults: str,
                    seed: int, options: dict, device: bool = False,
                    progress: Optional[Callable[[str, int, int], None]] = None,
                    allowed_failures: int = ALLOWED_FAILURES) -> dict:
    """The cells on the cluster: {"rows" (grid order, each tagged with its machine), "machines" (label:
    environment), "retried", "failed" (each naming its cell), "cluster" (its name)}."""
    tick = progress or (lambda *_: None)
    keys = {cell_key(c): c for c in cells}
    with connect(address, allowed_failures) as (client, name):
        results, retried, failed = run_tasks(
            client, [(k, sweep_cell_task, (heap_bytes, c, strategies, repeat, faults, seed, options, device))
                     for k, c in keys.items()], resources(device), address, tick, allowed_failures)
    rows: List[dict] = []
    machines: Dict[str, dict] = {}
    for k in keys:  # grid order
        res = results.get(k)
        if res is None:
            continue
        machines.setdefault(res["machine"], res["environment"])
        rows += [dict(r, ran_on=res["machine"]) for r in res["rows"]]
    for r in retried + failed:
        r.update(zip(("live_fraction", "mutators", "batch", "profile"), keys[r["key"]]))
    return {"rows": rows, "machines": machines, "retried": retried, "failed": failed, "cluster": name}


def bench_groups(cfg: Any) -> List[Tuple[str, Any]]:
    """The bench's comparisons: per fault mode, mutator count and profile, every strategy (stop-the-world, which
    has no faults nor mutators, with the first group without mutators), each a BenchConfig of its own."""
    keys: List[tuple] = []
    for sc in cfg.scenarios():
        if sc.strategy != "stw" and (sc.faults, sc.mutators, sc.profile) not in keys:
            keys.append((sc.faults, sc.mutators, sc.profile))
    stw_home = next((k for k in keys if k[1] == 0), keys[0] if keys else None)
    out = []
    for f, m, p in keys:
        strategies = tuple(s for s in cfg.strategies if s != "stw" or (f, m, p) == stw_home)
        out.append((f"{f}/{m}/{p}", dataclasses.replace(cfg, strategies=strategies, faults=(f,), mutators=(m,),
                                                        profiles=(p,))))
    return out


def run_bench(address: str, cfg: Any, progress: Optional[Callable[[str, int, int], None]] = None,
              device: bool = False, allowed_failures: int = ALLOWED_FAILURES) -> dict:
    """The bench on the cluster, one task per comparison; one report (the bench's JSON) with each run tagged with
    its machine, the machines' environments, the retried groups; BenchError (status 1) when a group failed."""
    from ..profiles import options_for
    from .claims import evaluate_claims
    from .speed import compaction_summary

    tick = progress or (lambda *_: None)
    groups = bench_groups(cfg)
    if not groups:  # only stw: nothing concurrent, nothing a machine of the cluster would add
        raise BenchError("--cluster sends the bench's concurrent comparisons to workers: choose at least one "
                         "strategy besides stw (stop-the-world alone runs here: drop --cluster)", 2)
    with connect(address, allowed_failures) as (client, name):
        results, retried, failed = run_tasks(client, [(k, bench_group_task, (g, device)) for k, g in groups],
                                             resources(device), address, tick, allowed_failures)
    if failed:
        raise BenchError("on the cluster: " + "; ".join(f"{f['key']}: {f['reason']}" for f in failed), 1)
    first = results[groups[0][0]]
    runs: Dict[str, dict] = {}
    machines: Dict[str, dict] = {}
    for key, _ in groups:
        res = results[key]
        machines.setdefault(res["machine"], res["environment"])
        for r in res["report"]["runs"]:
            runs[r["key"]] = dict(r, ran_on=res["machine"])
    report = dict(first["report"])
    report["runs"] = [runs[sc.key] for sc in cfg.scenarios() if sc.key in runs]
    report["machines"] = machines
    report["retried"] = retried
    report["config"] = dict(report["config"], strategies=list(cfg.strategies), faults=list(cfg.faults),
                            mutators=list(cfg.mutators), profiles=list(cfg.profiles),
                            profile_options={p: options_for(p, 1, cfg.options) for p in cfg.profiles},
                            cluster=name, machine_of_limits=first["machine"])
    report["compaction"] = compaction_summary(report["limits"], report["runs"])
    report["claims"] = evaluate_claims(report)
    return report
