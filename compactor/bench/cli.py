"""Command line of `python -m compactor.bench` (the report goes to stdout, progress to stderr).

Exit status: 0 success (also when MOVE is unsupported: COPY is still measured), 1 a run failed, 2 usage error or
nothing can run here (no userfaultfd, not enough memory), 3 a heap failed verification.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..heap import GARBAGE_PATTERNS, parse_size
from .suite import STRATEGIES, BenchConfig, BenchError, run_suite


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1]: {text}")
    return v


def _choices(allowed, what):
    def parse(text: str):
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(allowed)}")
        return items
    return parse


def _ints(text: str):
    try:
        vals = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 or v > 256 for v in vals):
        raise argparse.ArgumentTypeError("mutator counts must lie in [0, 256]")
    return vals


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return v


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m compactor.bench",
        description="Reproduce the UFFDIO_REMAP series' measurements (MOVE vs COPY in a concurrent compacting GC) "
                    "and say whether each claim holds here. Subcommand: compare A.json B.json.")
    ap.add_argument("--quick", action="store_true", help="a small run (64 MiB heap, 3 repetitions; at most ~30 s)")
    ap.add_argument("--heap", type=_size, help="moving-space size, e.g. 64MiB, 1GiB (default 256MiB)")
    ap.add_argument("--live", type=_fraction, default=0.5, help="live fraction (default 0.5)")
    ap.add_argument("--garbage", choices=GARBAGE_PATTERNS, default="uniform")
    ap.add_argument("--strategies", type=_choices(STRATEGIES, "strategy"), default=STRATEGIES,
                    help="comma-separated: stw,copy,move,move-alloc")
    ap.add_argument("--faults", type=_choices(("sigbus", "thread"), "fault mode"), default=("sigbus",),
                    help="comma-separated: sigbus,thread")
    ap.add_argument("--mutators", type=_ints, default=(0, 2), help="comma-separated counts (default 0,2)")
    ap.add_argument("--batch", type=_positive, default=64, help="pages per MOVE/COPY ioctl (1 = per page)")
    ap.add_argument("--repeat", type=_positive, help="repetitions, interleaved (default 5; --quick 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="PATH", help="write the JSON report ('-' = stdout, nothing else printed there)")
    ap.add_argument("--csv", metavar="PATH", help="one row per repetition")
    ap.add_argument("--plot", metavar="PATH", help="PNG or SVG: completion time per strategy, fault-latency CDFs")
    ap.add_argument("--raw", metavar="DIR", help="per-fault latency samples as .npy, one file per scenario")
    ap.add_argument("--runner", action="store_true", help="run each collection in the native compactor-runner")
    ap.add_argument("--device", metavar="SERIAL", help="run the suite on an arm64 ADB device: host:port (TCP) or a "
                                                       "USB serial (adb-shell[usb]); ANDROID_SERIAL is honoured")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def config_from(args) -> BenchConfig:
    cfg = BenchConfig()
    if args.quick:
        cfg.heap, cfg.repeat, cfg.floor_pages, cfg.floor_repeat = 64 << 20, 3, 4096, 3
    if args.heap:
        cfg.heap = args.heap
    if args.repeat:
        cfg.repeat = args.repeat
    cfg.live, cfg.garbage, cfg.batch, cfg.seed = args.live, args.garbage, args.batch, args.seed
    cfg.strategies, cfg.faults, cfg.mutators = args.strategies, args.faults, args.mutators
    cfg.runner = args.runner
    cfg.device = args.device
    if cfg.device and cfg.runner:
        raise SystemExit("python -m compactor.bench: error: --device and --runner exclude each other")
    return cfg


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        return compare_main(argv[1:])
    ap = parser()
    args = ap.parse_args(argv)
    if args.plot and not args.plot.lower().endswith((".png", ".svg")):
        ap.error("--plot takes a .png or .svg path")
    err = Console(stderr=True)
    cfg = config_from(args)
    to_stdout_json = args.json == "-"
    out = Console(file=sys.stderr if to_stdout_json else sys.stdout, soft_wrap=False, width=200)
    samples = {}
    try:
        if args.quiet:
            report = run_suite(cfg)
        else:
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeElapsedColumn(), console=err, transient=True) as prog:
                task = prog.add_task("starting", total=1)

                def tick(desc, done, total):
                    prog.update(task, description=desc, completed=done, total=max(total, 1))

                report = run_suite(cfg, progress=tick)
    except BenchError as e:
        err.print(f"[red]error[/red]: {e}")
        return e.status
    for r in report["runs"]:
        s = r.pop("_samples", None)
        if s is not None and len(s):
            samples[r["key"]] = s
    for r in report["runs"]:
        if r["status"] == "unsupported":
            err.print(f"[yellow]warning[/yellow]: {r['key']}: {r['reason']}; COPY is still measured")
    if args.json:
        text = json.dumps(report, indent=2)
        if to_stdout_json:
            sys.stdout.write(text + "\n")
        else:
            with open(args.json + ".tmp", "w") as f:
                f.write(text + "\n")
            import os
            os.replace(args.json + ".tmp", args.json)
    if not to_stdout_json:
        from .report import render
        render(report, out)
    if args.csv:
        from .report import write_csv
        write_csv(report, args.csv)
    if args.plot:
        from .report import write_plot
        write_plot(report, samples, args.plot)
    if args.raw:
        from .report import write_raw
        write_raw(samples, args.raw)
    return 0


def compare_main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m compactor.bench compare",
                                 description="Two bench JSON reports side by side, with ratios.")
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args(argv)
    docs = []
    for path in (args.a, args.b):
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"error: cannot read {path}: {e}", file=sys.stderr)
            return 2
        if d.get("schema") != "compactor.bench/1":
            print(f"error: {path} is not a compactor.bench/1 report", file=sys.stderr)
            return 2
        docs.append(d)
    from .report import compare
    compare(docs[0], docs[1], Console(width=200), names=("A", "B"))
    return 0
