"""Argument parsers shared by the subcommands (argparse `type=` callables raising ArgumentTypeError)."""

from __future__ import annotations

import argparse
import os
from typing import Optional

from ..heap import parse_size
from ..layout import MAX_HEAP_SIZE


def size(text: str) -> int:
    """A heap size in [1MiB, MAX_HEAP_SIZE], e.g. 64MiB."""
    try:
        v = parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not 1 << 20 <= v <= MAX_HEAP_SIZE:
        raise argparse.ArgumentTypeError(f"must lie in [1MiB, {MAX_HEAP_SIZE >> 20}MiB], got {text}")
    return v


def unit_interval(zero_allowed: bool):
    """A number in [0, 1], or (0, 1] when zero is not allowed."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (0.0 <= v if zero_allowed else 0.0 < v) or not v <= 1.0:
            raise argparse.ArgumentTypeError(f"must lie in {'[' if zero_allowed else '('}0, 1]: {text}")
        return v
    return parse


fraction = unit_interval(zero_allowed=False)  # a live fraction
share = unit_interval(zero_allowed=True)      # a share of the heap to page out


def choices(allowed, what):
    """Comma-separated names, each one of `allowed`."""
    def parse(text: str):
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(bad) or repr(text)}; "
                                             f"choose from {', '.join(allowed)}")
        return items
    return parse


def ints(lo: int, hi: int, what: str):
    """Comma-separated integers, each in [lo, hi]."""
    def parse(text: str):
        try:
            vals = tuple(int(x) for x in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        if any(v < lo or v > hi for v in vals):
            raise argparse.ArgumentTypeError(f"{what} must lie in [{lo}, {hi}], got {text}")
        return vals
    return parse


def int_in(lo: int, hi: int):
    """One integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must lie in [{lo}, {hi}], got {text}")
        return v
    return parse


def list_of(conv, what):
    """Comma-separated values, each parsed by `conv`."""
    def parse(text):
        try:
            vals = tuple(conv(x) for x in text.split(","))
        except (ValueError, argparse.ArgumentTypeError) as e:
            raise argparse.ArgumentTypeError(f"bad {what} list {text!r}: {e}") from None
        return vals
    return parse


def plot_path(ap: argparse.ArgumentParser, path, flag: str = "--plot") -> None:
    """Refuses (usage error, before anything runs) a plot path that is neither .png nor .svg, or a plot when
    matplotlib is not installed."""
    if not path:
        return
    if not path.lower().endswith((".png", ".svg")):
        ap.error(f"{flag} takes a .png or .svg path")
    if not matplotlib_installed():
        ap.error(f"{flag} {MATPLOTLIB_MISSING}")


MATPLOTLIB_MISSING = "needs matplotlib, which is not installed: pip install 'compactor[plot]' (or matplotlib)"


def matplotlib_installed() -> bool:
    """Whether matplotlib imports (checked before a run that ends in a plot, not after it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


OUTPUT_FLAGS = ("json", "csv", "plot", "output", "trace")  # the argparse dests of files a command writes at its end


def unwritable_output(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with the output files `args` names (a folder that is missing or not writable), or None:
    checked before anything runs, so that a run never ends in a traceback after its work. "-" is stdout."""
    for dest in OUTPUT_FLAGS:
        path = getattr(args, dest, None)
        if not path or path == "-":
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            return f"--{dest} {path}: the folder {folder} does not exist or is not writable"
    return None


def check_output_paths(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage error (status 2, before anything runs) for an output file that cannot be written."""
    problem = unwritable_output(args)
    if problem:
        ap.error(problem)


def trace_path(path):
    """--trace FILE, checked before anything runs (the perfetto package installed, the folder there); None when
    not given. Raises BenchError (status 2) naming the remedy."""
    if not path:
        return None
    from ..trace import PerfettoMissing, require_perfetto
    from .types import BenchError

    try:
        require_perfetto()
    except PerfettoMissing as e:
        raise BenchError(f"--trace: {e}", 2) from None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BenchError(f"--trace {path}: the folder {folder} does not exist", 2)
    return path


# The app-like mutator options (compactor.profiles sets them by name); as raw flags they override a profile.
MUTATOR_OPTIONS = ("think_ns", "think", "frame_hz", "frame_duty", "alloc_rate", "tlab", "pre_pause_ms", "access",
                   "hops", "write_fraction")


def add_mutator_flags(ap: argparse.ArgumentParser) -> None:
    """--think-ns, --think, --frame-hz, ... from the core's options table (their ranges are checked by the core's
    validation, before anything runs): each overrides the mutator profile's value in every scenario."""
    from ..options import option_table

    table = {o["name"]: o for o in option_table()}
    g = ap.add_argument_group("mutator options (override the --mutator-profile's values)")
    for name in MUTATOR_OPTIONS:
        o = table[name]
        kw: dict = {"dest": name, "default": None, "help": f"{o['help']} (default {o['default']})".replace("%", "%%")}
        if o["choices"]:
            kw["choices"] = tuple(o["choices"])
        elif o["type"] in ("uint", "int"):
            kw["type"], kw["metavar"] = int, (o["unit"] or "N").upper().replace("/", "_")
        else:
            kw["type"], kw["metavar"] = float, (o["unit"] or "X").upper().replace("/", "_")
        g.add_argument(o["flag"], **kw)


def check_cluster_arguments(ap: argparse.ArgumentParser, args: argparse.Namespace, command: str) -> None:
    """Usage errors for what a cluster run cannot combine with (`command`: "bench" or "sweep")."""
    if args.cluster_devices and not args.cluster:
        ap.error("--cluster-devices runs on a cluster's phones: give --cluster ADDRESS too")
    if args.trace and args.cluster:
        ap.error(f"--trace records the collections of this machine: run the traced {command} without --cluster")
    if args.cluster and "young" in args.gc:
        ap.error("--gc young runs on this machine only (a cluster's workers build single-generation heaps): run it "
                 "without --cluster")


def add_cluster_arguments(ap: argparse.ArgumentParser, unit: str) -> None:
    """--cluster and --cluster-devices (the sweep's and the bench's: each `unit` is one task)."""
    ap.add_argument("--cluster", metavar="ADDRESS",
                    help=f"run each {unit} on a Dask cluster: tcp://HOST:8786 (workers: dask worker tcp://HOST:8786 "
                         "--resources machine=1 --nthreads 1), or local (a LocalCluster of one worker here); needs "
                         "pip install 'compactor[cluster]'")
    ap.add_argument("--cluster-devices", action="store_true",
                    help="with --cluster: run on the workers' phones (workers with --resources machine=1,device=1 "
                         "and COMPACTOR_DEVICE_SERIAL set)")


def mutator_flags(args) -> dict:
    """The mutator options given on the command line (collect() names)."""
    return {k: getattr(args, k) for k in MUTATOR_OPTIONS if getattr(args, k, None) is not None}


def profile_list(text: str) -> tuple:
    """Comma-separated mutator profile names (compactor.profiles), each known."""
    from .. import profiles

    return choices(tuple(profiles.names()), "mutator profile")(text)
