"""Young and full collections in the bench (issue 23): the generational heap's defaults when `--gc young` is asked
for, ART's metric names for what a collection did by generation, and the young/full comparison rows (per strategy,
fault mode, mutator count and profile: each kind's GC-thread time, its ratio against COPY of the same kind, and
young against full of the same strategy) that the text report, the CSV and the claims read."""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional

KINDS = ("young", "full")  # the collections `--gc` takes (full: today's; young: ART 16's kGcTypeSticky)
# HeapSpec shares of the generational heap a young run compacts unless given (--old-fraction, --mid-fraction,
# --young-survival): an old generation of 80% of the space as on a phone in steady state, a mid generation of 5%,
# 10% of the young generation surviving (benchmarks/young_collections.py's defaults).
GENERATION_DEFAULTS: Dict[str, float] = {"old_fraction": 0.8, "mid_fraction": 0.05, "young_survival": 0.1}
GENERATION_FLAGS = {"old_fraction": "--old-fraction", "mid_fraction": "--mid-fraction",
                    "young_survival": "--young-survival"}


def add_generation_flags(ap: Any, when: str = "") -> None:
    """--old-fraction (above 0: a generational heap), --mid-fraction and --young-survival, the HeapSpec shares of
    a generational heap; `when` prefixes their help (e.g. "with --gc young: ")."""
    from .args import fraction, share

    ap.add_argument("--old-fraction", type=fraction, help=f"{when}the old generation's share of the space "
                    f"(default {GENERATION_DEFAULTS['old_fraction']})")
    ap.add_argument("--mid-fraction", type=share, help=f"{when}the mid generation's share of the space "
                    f"(default {GENERATION_DEFAULTS['mid_fraction']})")
    ap.add_argument("--young-survival", type=share, help=f"{when}the share of the young generation's objects (and "
                    f"of each epoch's allocation, in a lifetime) still reachable (default "
                    f"{GENERATION_DEFAULTS['young_survival']})")


def spec_error(e: ValueError) -> str:
    """HeapSpec's message for a bad share, naming the flags instead of the field names."""
    text = str(e)
    for field, flag in GENERATION_FLAGS.items():
        text = text.replace(field, flag)
    return text


def art_metrics(kind: str, generational: Dict[str, Any]) -> Dict[str, Any]:
    """ART's names for what a collection did (runtime/gc/heap.cc metrics): {Young,Full}GcScannedBytes,
    {Young,Full}GcFreedBytes and AppSlowPathDuring{Young,Full}Gc (ms: the end of the pause to the last to-space page
    mapped)."""
    k = "Young" if kind == "young" else "Full"
    return {f"{k}GcScannedBytes": generational.get("scanned_bytes"),
            f"{k}GcFreedBytes": generational.get("freed_bytes"),
            f"AppSlowPathDuring{k}Gc": generational.get("app_slow_path_ms")}


def run_generational(reps: List[dict]) -> Optional[Dict[str, Any]]:
    """A run's `generational` section from its repetitions' (None when the executor reported none): the median
    repetition's pages and cards (by GC-thread time), the app's slow path as the median over the repetitions."""
    gens = [r["generational"] for r in reps if r.get("generational")]
    if not gens:
        return None
    order = sorted(range(len(reps)), key=lambda i: reps[i]["gc_thread_s"])
    mid = reps[order[len(order) // 2]].get("generational") or gens[0]
    slow = [g.get("app_slow_path_ms") for g in gens if g.get("app_slow_path_ms") is not None]
    return dict(mid, app_slow_path_ms=statistics.median(slow) if slow else None)


def same_scenario(r: dict) -> tuple:
    """A run's scenario without its strategy and kind (what young and full runs, or a strategy and COPY, share)."""
    return (r["faults"], r["mutators"], r.get("profile", "stress"))


def kind_of(r: dict) -> str:
    """A run's collection kind (reports before --gc have full collections only)."""
    return r.get("kind", "full")


def young_full_rows(runs: List[dict]) -> List[dict]:
    """Per measured run of a report with young runs: kind, strategy, GC-thread median, ratio against COPY of the
    same kind, ratio against the full run of the same strategy (young runs), and its generational section. Empty
    for a report without young runs."""
    measured = [r for r in runs if r.get("status") == "measured"]
    if not any(kind_of(r) == "young" for r in measured):
        return []
    by = {(kind_of(r), r["strategy"], same_scenario(r)): r for r in measured}
    out = []
    for r in measured:
        full = by.get(("full", r["strategy"], same_scenario(r)))
        out.append({"kind": kind_of(r), "strategy": r["strategy"], "faults": r["faults"], "mutators": r["mutators"],
                    "profile": r.get("profile", "stress"), "median": r["median"],
                    "ratio_vs_copy_median": r.get("ratio_vs_copy_median"),
                    "ratio_vs_full_median": r.get("ratio_vs_full_median") if full is not None else None,
                    "generational": r.get("generational") or {}, "verified": r.get("verified")})
    return out


def ratios_vs_full(runs: List[dict]) -> None:
    """Adds `ratio_vs_full` (per repetition) and its median to each measured young run that has a full run of the
    same strategy and scenario: young GC-thread time over full."""
    by = {(kind_of(r), r["strategy"], same_scenario(r)): r for r in runs if r.get("status") == "measured"}
    for (k, s, sc), r in by.items():
        full = by.get(("full", s, sc))
        if k != "young" or full is None:
            continue
        ratios = [a / b for a, b in zip(r["gc_thread_s"], full["gc_thread_s"]) if b]
        r["ratio_vs_full"] = ratios
        r["ratio_vs_full_median"] = statistics.median(ratios) if ratios else None
