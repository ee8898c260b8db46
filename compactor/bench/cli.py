"""Command line of `python -m compactor.bench` (the report goes to stdout, progress to stderr).

Exit status: 0 success (also when MOVE is unsupported: COPY is still measured), 1 a run failed, 2 usage error or
nothing can run here (no userfaultfd, not enough memory), 3 a heap failed verification.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from rich.console import Console
from rich.markup import escape

from .. import _native
from .. import profiles as _profiles
from ..collector import STRATEGIES, make_config
from ..heap import GARBAGE_PATTERNS, HeapSpec
from . import progress
from .args import (
    add_cluster_arguments,
    add_mutator_flags,
    check_cluster_arguments,
    check_output_paths,
    mutator_flags,
    plot_path,
    profile_list,
    trace_path,
    unwritable_output,
)
from .args import choices as _choices
from .args import fraction as _fraction
from .args import int_in as _int_in
from .args import ints as _ints
from .args import share as _share
from .args import size as _size
from .config import BenchConfig
from .generational import GENERATION_DEFAULTS, GENERATION_FLAGS, KINDS, add_generation_flags, spec_error
from .schema import ACCEPTED_BY_COMPARE, SWEEPS_ACCEPTED_BY_COMPARE
from .suite import run_suite
from .types import BenchError

MAX_REPORT_BYTES = 256 << 20


def parser() -> argparse.ArgumentParser:
    """The bench's options at the top level, and the subcommands compare, sweep, scale, plot and lifetime."""
    from . import lifetime, scale, sweep

    ap = argparse.ArgumentParser(
        prog="python -m compactor.bench",
        description="Reproduce the UFFDIO_REMAP series' measurements (MOVE vs COPY in a concurrent compacting GC) "
                    "and say whether each claim holds here. Subcommands: compare A.json B.json [C.json ...]; "
                    "sweep (where MOVE wins: python -m compactor.bench sweep --help); "
                    "scale (how costs grow with the heap); "
                    "plot REPORT.json -o PATH (redraw a report's plot); "
                    "lifetime (young and full collections over an app's lifetime, chosen by ART's heuristic).")
    add_bench_arguments(ap)
    sub = ap.add_subparsers(dest="command", metavar="{compare,sweep,scale,plot,lifetime}")
    for name, add, help_, description in (
            ("compare", add_compare_arguments, "reports side by side", "Bench JSON reports side by side, with ratios, "
             "or sweep reports lined up by machine and kernel."),
            ("sweep", sweep.add_arguments, "where MOVE wins", sweep.DESCRIPTION),
            ("scale", scale.add_arguments, "how costs grow with the heap", scale.DESCRIPTION),
            ("plot", add_plot_arguments, "redraw a report's plot", "Redraw the --plot figure of a bench JSON report "
             "(no measurement; fault latency from the report's percentiles)."),
            ("lifetime", lifetime.add_arguments, "young and full collections over an app's lifetime",
             lifetime.DESCRIPTION)):
        p = sub.add_parser(name, prog=f"python -m compactor.bench {name}", help=help_, description=description)
        add(p)
        p.set_defaults(subparser=p)
    return ap


def add_bench_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quick", action="store_true", help="a small run (64 MiB heap, 3 repetitions; at most ~30 s)")
    ap.add_argument("--heap", type=_size, help="moving-space size, e.g. 64MiB, 1GiB (default 256MiB)")
    ap.add_argument("--live", type=_fraction, help="live fraction (default 0.5; with --heap-from: the dump's real "
                                                   "reachability unless given)")
    ap.add_argument("--heap-from", metavar="DUMP.hprof", help="compact a real heap: an HPROF dump (Android's am "
                    "dumpheap, Android Studio, a JVM's jcmd GC.heap_dump); --heap then picks how many copies")
    ap.add_argument("--hprof-heap", choices=("app", "zygote", "image", "all"), default="app",
                    help="which heap of an Android dump (default app; a JVM dump has one)")
    ap.add_argument("--heap-from-app", metavar="PACKAGE", help="with --device: dump that app's heap there "
                                                               "(am dumpheap), pull it and compact it")
    ap.add_argument("--garbage", choices=GARBAGE_PATTERNS, default="uniform")
    ap.add_argument("--strategies", type=_choices(STRATEGIES, "strategy"), default=STRATEGIES,
                    help=f"comma-separated: {','.join(STRATEGIES)}")
    ap.add_argument("--faults", type=_choices(("sigbus", "thread"), "fault mode"), default=("sigbus",),
                    help="comma-separated: sigbus,thread")
    ap.add_argument("--mutators", type=_ints(0, _native.MAX_MUTATORS, "mutator counts"),
                    help="comma-separated counts (default: 0 and CPUs - 1, at least 1: no oversubscription)")
    ap.add_argument("--mutator-profile", dest="profiles", type=profile_list, metavar="PROFILES",
                    help="comma-separated mutator profiles, each a scenario per strategy and mutator count > 0 "
                         f"(default {','.join(BenchConfig().profiles)}: the stress loop and the app-like one, "
                         f"{_profiles.describe(_profiles.APP)}); --list-profiles names them all")
    ap.add_argument("--list-profiles", action="store_true", help="print the mutator profiles and their options")
    ap.add_argument("--batch", type=_int_in(1, _native.MAX_BATCH), default=64,
                    help="pages per GC run: one MOVE/COPY ioctl each (1 = per page; default 64)")
    ap.add_argument("--move-min-run", type=_int_in(1, _native.MAX_BATCH),
                    help="hybrid: the GC MOVEs runs of at least this many pages while mutators run, "
                         "COPYs shorter (default 64)")
    ap.add_argument("--gc-cpu", type=_int_in(0, 4095), help="pin the GC thread to this CPU")
    ap.add_argument("--mutator-cpus", type=_ints(0, 4095, "CPU numbers"), help="pin mutators round-robin to these CPUs")
    ap.add_argument("--backoff", choices=("art", "futex"),
                    help="how waiting threads wait for a page another thread owns (default art: ART's BackOff)")
    ap.add_argument("--swapped", type=_share, help="page out this share of the heap to swap before each "
                                                   "collection's pause, as a background app's heap is (needs swap: "
                                                   "compactor.swap.zram_swap sets up zram as root)")
    ap.add_argument("--repeat", type=_int_in(1, 1000), help="repetitions, interleaved (default 5; --quick 3)")
    ap.add_argument("--seed", type=_int_in(0, 2**63 - 1), default=1)
    ap.add_argument("--json", metavar="PATH", help="write the JSON report ('-' = stdout, nothing else printed there)")
    ap.add_argument("--csv", metavar="PATH", help="one row per repetition")
    ap.add_argument("--plot", metavar="PATH", help="PNG or SVG: completion time per strategy, fault-latency CDFs")
    ap.add_argument("--raw", metavar="DIR", help="per-fault latency samples as .npy, one file per scenario")
    ap.add_argument("--runner", action="store_true", help="run each collection in the native compactor-runner")
    ap.add_argument("--device", metavar="SERIAL", help="run the suite on an arm64 ADB device: host:port (TCP) or a "
                                                       "USB serial (adb-shell[usb]); ANDROID_SERIAL is honoured")
    ap.add_argument("--trace", metavar="FILE", help="a Perfetto trace of every measured collection (open it at "
                    "ui.perfetto.dev; needs pip install 'compactor[trace]')")
    ap.add_argument("--gc", type=_choices(KINDS, "collection kind"), default=("full",),
                    help="comma-separated collection kinds, each a scenario per strategy: full (the default: today's "
                         "single-generation heap) and young (ART 16's young collection: the heap becomes "
                         "generational and its mid and young generations are compacted, the old one mapped back); "
                         "e.g. --gc young,full")
    add_generation_flags(ap, "with --gc young: ")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    add_cluster_arguments(ap, "comparison (every strategy of one fault mode, mutator count and profile)")
    add_mutator_flags(ap)


def add_compare_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("reports", nargs="+", metavar="REPORT.json",
                    help="two or more bench reports (one scenario per row, a column per file), or sweep reports "
                         "(their cells lined up by kernel when the machines' kernels differ, else by file)")
    ap.add_argument("--json", metavar="PATH", help="sweeps: write them merged into one sweep report (its cells tagged "
                                                   "with their machines, by_kernel when the kernels differ)")


def add_plot_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("report", metavar="REPORT.json")
    ap.add_argument("-o", "--output", metavar="PATH", required=True, help=".png or .svg")


def config_from(args) -> BenchConfig:
    cfg = BenchConfig()
    if args.quick:
        cfg.heap, cfg.repeat, cfg.floor_pages, cfg.floor_repeat = 64 << 20, 3, 4096, 3
    if args.heap:
        cfg.heap = args.heap
    if args.repeat:
        cfg.repeat = args.repeat
    cfg.garbage, cfg.batch, cfg.seed = args.garbage, args.batch, args.seed
    if args.live is not None:
        cfg.live, cfg.live_given = args.live, True
    cfg.heap_given = args.heap is not None
    cfg.heap_from, cfg.hprof_heap, cfg.heap_from_app = args.heap_from, args.hprof_heap, args.heap_from_app
    if cfg.heap_from_app and not args.device:
        raise BenchError("--heap-from-app dumps an app's heap on a device: give --device SERIAL too", 2)
    if cfg.heap_from and cfg.heap_from_app:
        raise BenchError("--heap-from and --heap-from-app exclude each other", 2)
    if cfg.heap_from and not os.path.isfile(cfg.heap_from):
        raise BenchError(f"--heap-from: no such file: {cfg.heap_from}", 2)
    cfg.strategies, cfg.faults = args.strategies, args.faults
    if args.mutators:
        cfg.mutators = args.mutators
    cfg.options = {k: getattr(args, k) for k in ("move_min_run", "gc_cpu", "mutator_cpus", "backoff", "swapped")
                   if getattr(args, k) is not None}
    if cfg.options.get("mutator_cpus") is not None:
        cfg.options["mutator_cpus"] = list(cfg.options["mutator_cpus"])
    cfg.options.update(mutator_flags(args))
    if args.profiles:
        cfg.profiles = args.profiles
    if not args.device:  # the device's runner validates against the device's CPUs
        try:
            for p in cfg.profiles:
                make_config("copy", "sigbus", max(cfg.mutators), batch=cfg.batch,
                            **_profiles.options_for(p, max(cfg.mutators), cfg.options))
        except ValueError as e:
            raise BenchError(str(e), 2) from None
    cfg.runner = args.runner
    cfg.device = args.device
    cfg.trace = trace_path(args.trace)
    cfg.gc, cfg.generations = args.gc, generations_from(args)
    return cfg


def generations_from(args) -> Optional[dict]:
    """The generational heap's shares (HeapSpec names) for --gc young, or None; BenchError (status 2) for a
    generation flag without young collections, or young collections where they cannot run."""
    given = {k: getattr(args, k) for k in GENERATION_FLAGS if getattr(args, k, None) is not None}
    if "young" not in args.gc:
        if given:
            raise BenchError(f"{', '.join(GENERATION_FLAGS[k] for k in given)} "
                             f"{'shape' if len(given) > 1 else 'shapes'} the generational heap of young "
                             "collections: add young to --gc (e.g. --gc young,full)", 2)
        return None
    if args.device:
        raise BenchError("--gc young runs on this machine only (in process, or with --runner): the device executor "
                         "pushes one plan file, the full collection's, to the phone; drop young from --gc or run "
                         "without --device", 2)
    if args.heap_from or args.heap_from_app:
        raise BenchError("--gc young needs a generational heap, and a heap from an HPROF dump (--heap-from, "
                         "--heap-from-app) has one generation: drop young from --gc or the dump", 2)
    if args.live is not None:
        raise BenchError("--live does not apply to the generational heap of --gc young: its live data is set by "
                         "--old-fraction (90% of the old generation live), --mid-fraction (half of it live) and "
                         "--young-survival", 2)
    shares = dict(GENERATION_DEFAULTS, **given)
    try:
        HeapSpec(size=args.heap or (64 << 20), **shares)
    except ValueError as e:
        raise BenchError(spec_error(e), 2) from None
    return shares


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    args = ap.parse_args(argv)
    if getattr(args, "list_profiles", False) and args.command is None:
        for name in _profiles.names():
            print(_profiles.describe(name))
        return 0
    if args.command == "compare":
        return compare_command(args)
    if args.command == "sweep":
        from . import sweep
        return sweep.run_command(args.subparser, args)
    if args.command == "scale":
        from . import scale
        return scale.run_command(args)
    if args.command == "plot":
        return plot_command(args.subparser, args)
    if args.command == "lifetime":
        from . import lifetime
        return lifetime.run_command(args.subparser, args)
    return bench_command(ap, args)


def bench_command(ap: argparse.ArgumentParser, args) -> int:
    """The bench itself (no subcommand)."""
    plot_path(ap, args.plot)
    check_output_paths(ap, args)
    err = Console(stderr=True)
    if args.device and args.runner:
        ap.error("--device and --runner exclude each other")
    if args.cluster and (args.device or args.runner or args.heap_from_app):
        ap.error("--cluster runs on the cluster's workers: --device, --runner and --heap-from-app are for this "
                 "machine (a worker's phone: --cluster-devices)")
    check_cluster_arguments(ap, args, "bench")
    try:
        cfg = config_from(args)
    except BenchError as e:
        print(f"python -m compactor.bench: error: {e}", file=sys.stderr)
        return e.status
    to_stdout_json = args.json == "-"
    out = Console(file=sys.stderr if to_stdout_json else sys.stdout, soft_wrap=False, width=200)
    samples = {}
    try:
        if args.cluster:
            from .cluster import run_bench
            report = progress.run(lambda tick: run_bench(args.cluster, cfg, tick, args.cluster_devices), args.quiet,
                                  err)
        else:
            report = progress.run(lambda tick: run_suite(cfg, progress=tick), args.quiet, err)
    except BenchError as e:
        err.print(f"[red]error[/red]: {escape(str(e))}")
        return e.status
    for r in report["runs"]:
        s = r.pop("_samples", None)
        if s is not None and len(s):
            samples[r["key"]] = s
    for r in report["runs"]:
        if r["status"] == "unsupported":
            err.print(f"[yellow]warning[/yellow]: {r['key']}: {r['reason']}; COPY is still measured")
    from .output import emit_report
    from .report import render
    emit_report(report, args.json, lambda r: render(r, out))
    if args.csv:
        from .output import write_bench_csv
        write_bench_csv(report, args.csv)
    if args.plot:
        from .report import write_plot
        write_plot(report, samples, args.plot)
    if args.raw:
        from .report import write_raw
        write_raw(samples, args.raw)
    return 0


def read_report(path: str, accept_sweeps: bool = False) -> Optional[dict]:
    """A bench JSON report (or a sweep's, with accept_sweeps), or None after saying on stderr why it is not one."""
    try:
        if os.path.getsize(path) > MAX_REPORT_BYTES:  # untrusted input: bounded before it is read
            raise OSError(f"larger than {MAX_REPORT_BYTES >> 20} MiB: not a bench report")
        with open(path) as f:
            d = json.load(f)
        if not isinstance(d, dict):
            raise json.JSONDecodeError("not a JSON object", "", 0)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        print(f"error: cannot read {path}: {e}", file=sys.stderr)
        return None
    accepted = ACCEPTED_BY_COMPARE + (SWEEPS_ACCEPTED_BY_COMPARE if accept_sweeps else ())
    if d.get("schema") not in accepted:
        print(f"error: {path} is not a compactor.bench report ({' or '.join(accepted)})", file=sys.stderr)
        return None
    return d


def compare_command(args) -> int:
    if len(args.reports) < 2:
        print("python -m compactor.bench compare: error: give two or more reports", file=sys.stderr)
        return 2
    problem = unwritable_output(args)
    if problem:
        print(f"python -m compactor.bench compare: error: {problem}", file=sys.stderr)
        return 2
    docs: List[dict] = []
    for path in args.reports:
        doc = read_report(path, accept_sweeps=True)
        if doc is None:
            return 2
        docs.append(doc)
    sweeps = [d["schema"] in SWEEPS_ACCEPTED_BY_COMPARE for d in docs]
    if any(sweeps) and not all(sweeps):
        print("python -m compactor.bench compare: error: compare bench reports with bench reports and sweeps with "
              "sweeps", file=sys.stderr)
        return 2
    if args.json and not all(sweeps):
        print("python -m compactor.bench compare: error: --json writes merged sweeps; bench reports are compared "
              "on screen only", file=sys.stderr)
        return 2
    names = [chr(ord("A") + i) if i < 26 else f"F{i + 1}" for i in range(len(docs))]
    console = Console(width=240)
    if all(sweeps):
        from .machines import compare_sweeps
        for n, path in zip(names, args.reports):
            console.print(f"{n}: {path}")
        compare_sweeps(docs, names, console)
        if args.json:
            from .output import atomic_write
            from .sweep import merged_report
            atomic_write(args.json, (json.dumps(merged_report(docs, names), indent=2) + "\n").encode())
        return 0
    from .report import compare, compare_many
    if len(docs) == 2:
        compare(docs[0], docs[1], console, names=("A", "B"))
    else:
        compare_many(docs, console, names)
    return 0


def plot_command(ap: argparse.ArgumentParser, args) -> int:
    """Redraws a report's plot from its JSON (no raw samples there: fault latency from its percentiles)."""
    plot_path(ap, args.output, "--output")
    check_output_paths(ap, args)
    report = read_report(args.report)
    if report is None:
        return 2
    from .report import write_plot
    write_plot(report, {}, args.output)
    return 0
