"""The soak (issue 22): seeded random configurations collected back to back in one process, every collection
verified, and the process's resources (RSS, open file descriptors, /proc/self/maps lines, threads) compared at the
end with the start.

    python benchmarks/soak.py --minutes N | --collections N [--seed S] [--json FILE] [--quiet]

Each draw picks a strategy (the MOVE family only where the kernel has UFFDIO_MOVE), a fault mode, 0-4 mutators
with a mutator profile (compactor/profiles.py) and an access pattern, a batch, one of a few small heaps generated
up front (collect() resets a heap, so they are reused), optionally a recoverable injected errno (EAGAIN, EBUSY,
ENOMEM at a small fraction: the run must recover and verify), a swapped share where swap is active (never set up
here), app signals sent to the mutators (the signal option) for a quarter of the draws with mutators, and now and
then an error-path hook whose outcome is known ("expected errors"):
- double-install: inject_errno=-1, the kernel finds a page already mapped: collect() must raise HeapCorruption;
- watchdog: stall_seconds with a short watchdog: collect() must raise WatchdogTimeout;
- poison: inject_errno=-2, the GC poisons its first run; the verifier's read of it is a hardware-error SIGBUS,
  which the handler chains to the default action, so the process dies: this one runs in a child interpreter
  (the same configuration on the same heap shape), which must die of SIGBUS.
Any other exception, a missing expected error or an unverified result is a failure.

The config generator (`draw_configs`) and the leak verdict (`verdict`) are plain functions for the tests.
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import compactor
from compactor import profiles, uffd
from compactor import swap as swap_mod
from compactor.bench.args import check_output_paths  # absolute: this file also runs by path
from compactor.bench.output import atomic_write
from compactor.collector import STRATEGIES
from compactor.kernel_facts import MOVE_STRATEGIES  # the strategies that need UFFDIO_MOVE

SCHEMA_ID = "compactor.soak/1"

FAULTS = ("sigbus", "thread")
MUTATORS = (0, 1, 2, 3, 4)
BATCHES = (1, 16, 64, 512)
ACCESS = ("random", "sequential", "hot-set")
PRE_PAUSE_MS = (0, 1, 2)  # small: collections stay quick
# The heaps, generated once (1-8 MiB, every garbage pattern, live shares from 10% to 90%).
HEAP_SHAPES: Tuple[Dict[str, Any], ...] = (
    dict(size="1MiB", live_fraction=0.5, garbage="uniform", seed=1),
    dict(size="2MiB", live_fraction=0.3, garbage="clustered", seed=2),
    dict(size="3MiB", live_fraction=0.9, garbage="dense-prefix", seed=3),
    dict(size="4MiB", live_fraction=0.5, garbage="clustered", seed=4),
    dict(size="6MiB", live_fraction=0.1, garbage="uniform", seed=5),
    dict(size="8MiB", live_fraction=0.7, garbage="dense-prefix", seed=6),
)
# Recoverable injection: the run retries (EAGAIN, ENOMEM) or falls back to COPY (EBUSY, MOVE only) and verifies.
RECOVERABLE_RATE = 0.1
INJECT_FRACTIONS = (0.01, 0.05, 0.1)  # ENOMEM gives up after 64 retries of one ioctl: never at these shares
SWAPPED_RATE = 0.2
# The signal option (a profiler's SIGPROF, a timer's SIGALRM, a SIGUSR1 whose handler reads the heap) for a share of
# the draws with mutators.
SIGNAL_RATE = 0.25
SIGNALS = ("sigprof", "sigalrm", "sigusr1")
SIGNAL_HZ = (500.0, 1000.0, 2000.0)
SWAPPED_SHARES = (0.25, 0.5)
# The error-path hooks, as a share of the draws, and what each must end in.
EXPECTED_RATES = {"double-install": 0.015, "watchdog": 0.01, "poison": 0.005}
EXPECTED_MESSAGES = {"double-install": "double install", "watchdog": "no page made progress"}
MOVE_HOOK_BATCHES = (16, 64)  # shorter than the smallest heap's to-space (122 pages)
STALL_SECONDS = 30.0   # far beyond the watchdog: the run ends by the watchdog or not at all
STALL_WATCHDOG = 0.2
POISON_TIMEOUT = 120.0

# The leak verdict's bounds (tests/README.md, "Soak", has the measurements): fds and threads exactly as at the
# start; mappings within MAPS_BOUND lines (room for four more glibc malloc arenas, two lines each, should thread
# contention create them after the warm-up); RSS growth at most 1 MiB per 1,000 collections plus RSS_FIXED (freed
# memory that malloc's arenas and Python's 1 MiB obmalloc arenas may keep).
MAPS_BOUND = 8
RSS_PER_1000 = 1 << 20
RSS_FIXED = 4 << 20
SAMPLE_EVERY = 50


class SoakFailure(Exception):
    """A collection that did not verify, an unexpected exception, or an expected error that did not come."""


# ---- the configurations ----------------------------------------------------------------------------------------

def draw_configs(seed: int, count: Optional[int] = None, *, move: bool = True, swap: bool = False,
                 heaps: int = len(HEAP_SHAPES)) -> Iterator[dict]:
    """Seeded configurations, the same sequence for the same arguments: ``count`` of them (None: endless).

    Each is {"index", "heap" (index into the heaps), "strategy", "faults", "mutators", "profile" (a name of
    compactor.profiles or None), "plan" (reuse the heap's plan, else collect() marks and plans), "options"
    (collect() keyword options), "expect" (None, or a key of EXPECTED_RATES)}. ``move``: the kernel has
    UFFDIO_MOVE (else no MOVE strategy is drawn); ``swap``: swap is active (else no swapped share)."""
    rng = random.Random(seed)
    strategies = [s for s in STRATEGIES if move or s not in MOVE_STRATEGIES]
    concurrent = [s for s in strategies if s != "stw"]
    hook_strategies = [s for s in ("copy", "move", "move-alloc") if s in concurrent]
    profile_names = sorted(profiles.PROFILES)
    i = 0
    while count is None or i < count:
        cfg: dict = {"index": i, "heap": rng.randrange(heaps), "strategy": rng.choice(strategies),
                     "faults": rng.choice(FAULTS), "mutators": rng.choice(MUTATORS), "profile": None,
                     "plan": rng.random() < 0.5, "expect": None}
        opts: dict = {"batch": rng.choice(BATCHES), "pre_pause_ms": rng.choice(PRE_PAUSE_MS),
                      "seed": rng.randrange(1, 1 << 32)}
        if cfg["mutators"]:
            cfg["profile"] = rng.choice(profile_names)
            opts.update(profiles.options(cfg["profile"]))
            opts["access"] = rng.choice(ACCESS)
        # Drawn with or without swap, so that the rest of the sequence is the same on either machine.
        swapped = rng.choice(SWAPPED_SHARES) if rng.random() < SWAPPED_RATE else 0.0
        if swap and swapped:
            opts["swapped"] = swapped
        u = rng.random()
        hook = None
        for name, rate in EXPECTED_RATES.items():
            if u < rate:
                hook = name
                break
            u -= rate
        if hook is not None and hook_strategies:
            cfg["expect"] = hook
            opts.pop("swapped", None)
            if hook == "watchdog":  # any concurrent strategy, any mutators
                if cfg["strategy"] == "stw":
                    cfg["strategy"] = rng.choice(concurrent)
                opts.update(stall_seconds=STALL_SECONDS, watchdog=STALL_WATCHDOG)
            else:  # the GC thread's first several-page run by the strategy's own method: no mutators, batch >= 16
                cfg["strategy"] = rng.choice(hook_strategies)
                cfg["mutators"], cfg["profile"] = 0, None
                for k in ("think_ns", "think", "frame_hz", "frame_duty", "alloc_rate", "access"):
                    opts.pop(k, None)
                # move: a run as long as the whole to-space (batch 512 on the 1 and 2 MiB heaps) has no recycled
                # page yet and is COPYed (pool empty), so a double install, which waits for a MOVE, never comes.
                opts["batch"] = rng.choice(MOVE_HOOK_BATCHES if cfg["strategy"] == "move" else BATCHES[1:])
                opts["inject_errno"] = -1 if hook == "double-install" else -2
        elif cfg["strategy"] != "stw" and rng.random() < RECOVERABLE_RATE:
            names = ["EAGAIN", "ENOMEM"] + (["EBUSY"] if cfg["strategy"] in MOVE_STRATEGIES else [])
            opts["inject_errno"] = getattr(errno, rng.choice(names))
            opts["inject_fraction"] = rng.choice(INJECT_FRACTIONS)
        # App signals in the fault path (drawn for every config, used where mutators run and no hook does).
        sig_name, sig_hz = rng.choice(SIGNALS), rng.choice(SIGNAL_HZ)
        if cfg["mutators"] and cfg["expect"] is None and rng.random() < SIGNAL_RATE:
            opts.update(signal=sig_name, signal_hz=sig_hz)
        cfg["options"] = opts
        yield cfg
        i += 1


def warmup_configs(*, move: bool = True, swap: bool = False, heaps: int = len(HEAP_SHAPES)) -> List[dict]:
    """One collection per strategy and fault mode (4 allocating mutators: the most threads, so that malloc's
    arenas exist; hybrid's first run measures its prices), one on each heap (its pristine image), and each
    in-process error path once."""
    out: List[dict] = []
    strategies = [s for s in STRATEGIES if move or s not in MOVE_STRATEGIES]
    for s in strategies:
        for f in FAULTS:
            out.append({"heap": len(out) % heaps, "strategy": s, "faults": f, "mutators": max(MUTATORS),
                        "profile": profiles.APP, "plan": False, "expect": None,
                        "options": {**profiles.options(profiles.APP), "pre_pause_ms": 1, "seed": 1,
                                    **({"swapped": SWAPPED_SHARES[0]} if swap else {})}})
    for k in range(heaps):
        out.append({"heap": k, "strategy": "copy", "faults": "sigbus", "mutators": 1, "profile": None, "plan": True,
                    "expect": None, "options": {"pre_pause_ms": 0, "seed": 1}})
    out.append({"heap": 0, "strategy": "copy", "faults": "sigbus", "mutators": 0, "profile": None, "plan": True,
                "expect": "double-install", "options": {"inject_errno": -1, "batch": 64, "pre_pause_ms": 0}})
    for f in FAULTS:
        out.append({"heap": 0, "strategy": "copy", "faults": f, "mutators": 2, "profile": None, "plan": True,
                    "expect": "watchdog", "options": {"stall_seconds": STALL_SECONDS, "watchdog": STALL_WATCHDOG,
                                                      "pre_pause_ms": 0}})
    for i, cfg in enumerate(out):
        cfg["index"] = -len(out) + i
    return out


def describe(cfg: dict) -> str:
    """One line naming a configuration (to reproduce it: --seed and its index)."""
    opts = " ".join(f"{k}={v}" for k, v in sorted(cfg["options"].items()))
    return (f"#{cfg['index']} heap {cfg['heap']} ({HEAP_SHAPES[cfg['heap']]['size']}) {cfg['strategy']}/"
            f"{cfg['faults']} mutators={cfg['mutators']} profile={cfg['profile']} plan={cfg['plan']} "
            f"expect={cfg['expect']} {opts}")


# ---- running them ----------------------------------------------------------------------------------------------

def make_heaps() -> list:
    return [compactor.Heap.generate(compactor.HeapSpec(**shape)) for shape in HEAP_SHAPES]


POISON_CHILD = """
import json, sys
import compactor
cfg = json.loads(sys.argv[1])
heap = compactor.Heap.generate(compactor.HeapSpec(**cfg["shape"]))
r = compactor.collect(heap, cfg["strategy"], faults=cfg["faults"], mutators=cfg["mutators"], **cfg["options"])
print("survived: verified", r.verified, "injected", r.counters["injected_failures"])
"""


def run_poison_child(cfg: dict) -> None:
    """The poison hook in a child interpreter: it must die of SIGBUS (the hardware-error SIGBUS chained to the
    default action); raises SoakFailure otherwise."""
    arg = json.dumps({"shape": HEAP_SHAPES[cfg["heap"]], "strategy": cfg["strategy"], "faults": cfg["faults"],
                      "mutators": cfg["mutators"], "options": cfg["options"]})
    p = subprocess.run([sys.executable, "-c", POISON_CHILD, arg], capture_output=True, text=True,
                       timeout=POISON_TIMEOUT, cwd="/")
    if p.returncode != -signal.SIGBUS:
        raise SoakFailure(f"poison: the child exited with {p.returncode}, not SIGBUS: {describe(cfg)}; "
                          f"{(p.stdout + p.stderr).strip()[-500:]}")


def run_one(cfg: dict, heaps: list, plans: list) -> str:
    """Runs one configuration; returns "verified" or the name of the expected error it ended in. Raises
    SoakFailure for an unverified result, any other exception, or an expected error that did not come."""
    if cfg["expect"] == "poison":
        run_poison_child(cfg)
        return "poison"
    heap = heaps[cfg["heap"]]
    plan = plans[cfg["heap"]] if cfg["plan"] else None
    expect = cfg["expect"]
    try:
        r = compactor.collect(heap, cfg["strategy"], faults=cfg["faults"], mutators=cfg["mutators"], plan=plan,
                              **cfg["options"])
    except compactor.HeapCorruption as e:
        if expect == "double-install" and EXPECTED_MESSAGES[expect] in str(e):
            return expect
        raise SoakFailure(f"{type(e).__name__}: {e}; {describe(cfg)}") from e
    except compactor.WatchdogTimeout as e:
        if expect == "watchdog" and EXPECTED_MESSAGES[expect] in str(e):
            return expect
        raise SoakFailure(f"{type(e).__name__}: {e}; {describe(cfg)}") from e
    except Exception as e:
        raise SoakFailure(f"{type(e).__name__}: {e}; {describe(cfg)}") from e
    if expect is not None:
        raise SoakFailure(f"expected {expect}, but the collection ended normally (verified={r.verified}); "
                          f"{describe(cfg)}")
    if not r.verified:
        raise SoakFailure(f"not verified; {describe(cfg)}")
    return "verified"


# ---- resources and the verdict ---------------------------------------------------------------------------------

def _status_field(name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {name}")


def resources() -> Dict[str, int]:
    """This process now: RSS (bytes, VmRSS), open fds, /proc/self/maps lines, threads."""
    fds = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir itself holds open
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    return {"rss_bytes": _status_field("VmRSS") * 1024, "fds": fds, "maps": maps,
            "threads": _status_field("Threads")}


def canonical_sample(heaps: list) -> Dict[str, int]:
    """resources() with every heap reset to its pristine image and Python's cyclic garbage collected, so that
    samples compare like with like (a compacted heap holds fewer pages than a pristine one)."""
    for heap in heaps:
        if heap.state != "pristine":
            heap.reset()
    gc.collect()
    return resources()


def verdict(start: Dict[str, int], end: Dict[str, int], collections: int, *, maps_bound: int = MAPS_BOUND,
            rss_fixed: int = RSS_FIXED, rss_per_1000: int = RSS_PER_1000) -> dict:
    """Whether the resources at the end are within bounds of the start: fds and threads exactly equal, mappings
    within ``maps_bound`` lines, RSS growth at most ``rss_fixed`` + ``rss_per_1000`` per 1,000 collections.
    Returns {"pass", "problems" (one sentence each), "growth" (end - start per resource), "rss_bound_bytes"}."""
    growth = {k: end[k] - start[k] for k in ("rss_bytes", "fds", "maps", "threads")}
    rss_bound = rss_fixed + rss_per_1000 * collections // 1000
    problems = []
    if growth["fds"] != 0:
        problems.append(f"open fds {start['fds']} -> {end['fds']} (must be equal)")
    if growth["threads"] != 0:
        problems.append(f"threads {start['threads']} -> {end['threads']} (must be equal)")
    if abs(growth["maps"]) > maps_bound:
        problems.append(f"mappings {start['maps']} -> {end['maps']} (bound: +-{maps_bound} lines)")
    if growth["rss_bytes"] > rss_bound:
        problems.append(f"RSS grew {growth['rss_bytes'] / 2**20:.2f} MiB over {collections} collections (bound: "
                        f"{rss_bound / 2**20:.2f} MiB = {rss_fixed / 2**20:.0f} MiB + {rss_per_1000 / 2**20:.0f} "
                        "MiB per 1000)")
    return {"pass": not problems, "problems": problems, "growth": growth, "rss_bound_bytes": rss_bound,
            "bounds": {"fds": 0, "threads": 0, "maps": maps_bound, "rss_fixed_bytes": rss_fixed,
                       "rss_per_1000_bytes": rss_per_1000}}


# ---- the command -----------------------------------------------------------------------------------------------

def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/soak.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, help="stop after this many minutes of measured collections")
    ap.add_argument("--collections", type=int, help="stop after this many measured collections")
    ap.add_argument("--seed", type=int, default=1, help="seed of the configurations (default 1)")
    ap.add_argument("--json", help="write the report here (atomically)")
    ap.add_argument("--sample-every", type=int, default=SAMPLE_EVERY,
                    help=f"resources sampled every this many collections (default {SAMPLE_EVERY})")
    ap.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    args = ap.parse_args(argv)
    if args.minutes is None and args.collections is None:
        ap.error("give --minutes N or --collections N (or both: whichever comes first stops the soak)")
    if args.minutes is not None and not args.minutes > 0:
        ap.error(f"--minutes must be positive, got {args.minutes}")
    if args.collections is not None and args.collections < 1:
        ap.error(f"--collections must be at least 1, got {args.collections}")
    if args.seed < 0:
        ap.error(f"--seed must be non-negative, got {args.seed}")
    if args.sample_every < 1:
        ap.error(f"--sample-every must be at least 1, got {args.sample_every}")
    check_output_paths(ap, args)
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    move = "move" in uffd.probe()
    swap = bool(swap_mod.active_swaps())
    heaps = make_heaps()
    plans = [compactor.plan(h) for h in heaps]
    t_warm = time.perf_counter()
    try:
        for cfg in warmup_configs(move=move, swap=swap, heaps=len(heaps)):
            run_one(cfg, heaps, plans)
    except SoakFailure as e:
        print(f"soak: FAIL in the warm-up: {e}", file=sys.stderr)
        return 1
    warm_s = time.perf_counter() - t_warm
    start = canonical_sample(heaps)
    samples = [{"collections": 0, "seconds": 0.0, **start}]
    by_kind: Dict[str, int] = {}
    outcomes: Dict[str, int] = {}
    injected: Dict[str, int] = {}
    failure = None
    done = 0
    deadline = None if args.minutes is None else time.perf_counter() + 60 * args.minutes
    if not args.quiet:
        print(f"soak: seed {args.seed}, MOVE {'yes' if move else 'no (copy and stw only)'}, swap "
              f"{'active' if swap else 'none'}; warm-up {warm_s:.1f} s; start: {fmt(start)}", flush=True)
    t0 = time.perf_counter()
    for cfg in draw_configs(args.seed, args.collections, move=move, swap=swap, heaps=len(heaps)):
        if deadline is not None and time.perf_counter() >= deadline:
            break
        try:
            outcome = run_one(cfg, heaps, plans)
        except SoakFailure as e:
            failure = {"index": cfg["index"], "config": describe(cfg), "error": str(e)}
            break
        done += 1
        key = f"{cfg['strategy']}/{cfg['faults']}"
        by_kind[key] = by_kind.get(key, 0) + 1
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        inj = cfg["options"].get("inject_errno", 0)
        if inj > 0:
            name = errno.errorcode[inj]
            injected[name] = injected.get(name, 0) + 1
        if "swapped" in cfg["options"]:
            injected["swapped"] = injected.get("swapped", 0) + 1
        if "signal" in cfg["options"]:
            name = "signal " + cfg["options"]["signal"]
            injected[name] = injected.get(name, 0) + 1
        if done % args.sample_every == 0:
            s = canonical_sample(heaps)
            samples.append({"collections": done, "seconds": round(time.perf_counter() - t0, 3), **s})
            if not args.quiet:
                print(f"  {done:>7} collections {done / (time.perf_counter() - t0):6.1f}/s  {fmt(s)}", flush=True)
    elapsed = time.perf_counter() - t0
    end = canonical_sample(heaps)
    if samples[-1]["collections"] != done:
        samples.append({"collections": done, "seconds": round(elapsed, 3), **end})
    v = verdict(start, end, done)
    expected = {k: outcomes.get(k, 0) for k in EXPECTED_RATES}
    ok = failure is None and v["pass"]
    print(f"soak: {done} collections in {elapsed:.1f} s ({done / elapsed if elapsed else 0:.1f}/s), seed "
          f"{args.seed}: {outcomes.get('verified', 0)} verified, expected errors "
          + ", ".join(f"{k} {n}" for k, n in expected.items()))
    print("  by strategy/faults: " + ", ".join(f"{k} {by_kind[k]}" for k in sorted(by_kind)))
    if injected:
        print("  recoverable injection, swap and signals: " + ", ".join(f"{k} {injected[k]}" for k in sorted(injected)))
    print(f"  start: {fmt(start)}\n  end:   {fmt(end)}")
    g = v["growth"]
    print(f"  growth: fds {g['fds']:+d} (bound 0), threads {g['threads']:+d} (bound 0), maps {g['maps']:+d} "
          f"(bound +-{MAPS_BOUND}), RSS {g['rss_bytes'] / 2**20:+.2f} MiB (bound {v['rss_bound_bytes'] / 2**20:.2f} "
          f"MiB), per 1000 collections {1000 * g['rss_bytes'] / max(done, 1) / 2**20:+.2f} MiB")
    if failure:
        print(f"soak: FAIL: collection {failure['error']}", file=sys.stderr)
    for p in v["problems"]:
        print(f"soak: LEAK: {p}", file=sys.stderr)
    print(f"soak: {'PASS' if ok else 'FAIL'}")
    if args.json:
        report = {"schema": SCHEMA_ID, "seed": args.seed, "minutes": args.minutes,
                  "collections_requested": args.collections, "kernel": platform.release(), "move": move,
                  "swap": swap, "warmup_seconds": round(warm_s, 3), "collections": done,
                  "seconds": round(elapsed, 3), "collections_per_second": round(done / elapsed, 2) if elapsed else 0,
                  "outcomes": outcomes, "expected_errors": expected, "by_strategy_faults": by_kind,
                  "injected": injected, "start": start, "end": end, "verdict": v, "samples": samples,
                  "failure": failure, "pass": ok}
        atomic_write(args.json, (json.dumps(report, indent=1) + "\n").encode())
    return 0 if ok else 1


def fmt(r: Dict[str, int]) -> str:
    return f"RSS {r['rss_bytes'] / 2**20:.1f} MiB, fds {r['fds']}, maps {r['maps']}, threads {r['threads']}"


if __name__ == "__main__":
    sys.exit(main())
