"""Aggregation and statistics: per-scenario medians, ratios against COPY, load measures, latency percentiles."""

from __future__ import annotations

import math
import statistics
from typing import Dict, List, Optional, Tuple

import numpy as np

from .generational import art_metrics, ratios_vs_full, run_generational
from .types import Scenario


def _median(xs):
    return float(statistics.median(xs)) if xs else None


def aggregate(scenarios: List[Scenario], raws: Dict[str, List[dict]], heap_bytes: int, live_bytes,
              unsupported: Dict[str, str]) -> List[dict]:
    """Per scenario: its repetitions' times, ratios against COPY of the same collection kind, pages, load and
    mutator measures and (young scenarios) the ratio against the full collection of the same strategy.
    `live_bytes`: the bytes the plan keeps, or a dict of them by collection kind."""
    runs = []
    # (kind, faults, mutators, profile): COPY's GC times (each kind's runs against COPY of the same kind)
    copy_of: Dict[Tuple[str, Optional[str], int, str], List[float]] = {}
    for sc in scenarios:
        if sc.strategy == "copy" and sc.key in raws:
            copy_of[(sc.kind, sc.faults, sc.mutators, sc.profile)] = [r["gc_thread_s"] for r in raws[sc.key]]
    first_fault = next((sc.faults for sc in scenarios if sc.strategy == "copy"), None)
    for sc in scenarios:
        row = {"strategy": sc.strategy, "faults": sc.faults, "mutators": sc.mutators, "profile": sc.profile,
               "kind": sc.kind, "key": sc.key, "heap_bytes": heap_bytes,
               "live_bytes": live_bytes.get(sc.kind, 0) if isinstance(live_bytes, dict) else live_bytes}
        if sc.key in unsupported:
            row.update(status="unsupported", reason=unsupported[sc.key], verified=None)
            runs.append(row)
            continue
        reps = raws.get(sc.key, [])
        gc = [r["gc_thread_s"] for r in reps]
        order = np.argsort(gc)
        mid = reps[int(order[len(order) // 2])] if reps else {}
        k = sc.kind
        base = copy_of.get((k, sc.faults, sc.mutators, sc.profile)) \
            or copy_of.get((k, first_fault, sc.mutators, sc.profile)) or copy_of.get((k, first_fault, 0, "stress"))
        ratios = [g / b for g, b in zip(gc, base)] if base else []
        rep_samples = [r.get("latency_samples_ns") for r in reps]
        samples = np.concatenate([s for s in rep_samples if s is not None and len(s)]) if any(
            s is not None and len(s) for s in rep_samples) else np.zeros(0, np.uint64)
        row.update(
            status="measured",
            gc_thread_s=gc, median=_median(gc), min=min(gc) if gc else None, max=max(gc) if gc else None,
            ratio_vs_copy=ratios, ratio_vs_copy_median=_median(ratios),
            pause_s=[r["pause_s"] for r in reps], pause_median=_median([r["pause_s"] for r in reps]),
            gc_time_ns={k: _median([r["gc_time_ns"][k] for r in reps]) for k in (mid.get("gc_time_ns") or {})},
            pages=mid.get("pages", {}), counters=mid.get("counters", {}),
            fault_latency_us=_percentiles_us(samples) if samples.size else (mid.get("fault_latency_us") or {}),
            fallback=sorted({r.get("fallback", "") for r in reps} - {""}),
            **load_measures(reps),
            **mutator_measures(reps),
            gc_runs_by_length_log2=mid.get("gc_runs_by_length_log2"),
            priced_policy=[r.get("priced_policy") for r in reps],  # hybrid auto: prices, learned shootdown
            verified=all(r.get("verified") for r in reps) and bool(reps),
            repetitions=len(reps),
        )
        gen = run_generational(reps)
        if gen is not None:  # what the collection did by generation, and ART's names for it
            row.update(generational=gen, art_metrics=art_metrics(sc.kind, gen))
        row["_samples"] = samples
        runs.append(row)
    ratios_vs_full(runs)
    return runs


def _finite(x) -> Optional[float]:
    """A number, or None for a missing value or NaN (the core reports NaN where a ratio has no denominator)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _clean(view: dict) -> dict:
    """A mutator view with NaN as None (JSON null), nested dicts too."""
    return {k: _clean(v) if isinstance(v, dict) else _finite(v) for k, v in view.items()}


def mutator_pages_per_ms(raw: dict) -> Optional[float]:
    """Pages the mutators resolved per ms of the concurrent phase (the app's fault pressure on the strategy)."""
    phase = raw.get("concurrent_s")
    by = (raw.get("pages") or {}).get("by_mutators")
    return by / (phase * 1e3) if by is not None and phase else None


def mutator_measures(reps: List[dict]) -> dict:
    """What the mutators saw (issue 18 item 2): `mutator_view` as medians over the repetitions (nested counts
    too; null where no repetition has a value), `mutator_view_per_repetition` and `mutator_pages_per_ms`
    (median over repetitions of the pages mutators resolved per ms of the concurrent phase)."""
    views = [_clean(r.get("mutator_view") or {}) for r in reps]

    def med(vals):
        vals = [v for v in vals if v is not None]
        return _median(vals)

    keys = list(views[0]) if views else []
    merged: Dict[str, object] = {}
    for k in keys:
        if isinstance(views[0][k], dict):
            merged[k] = {kk: med([v.get(k, {}).get(kk) for v in views]) for kk in views[0][k]}
        else:
            merged[k] = med([v.get(k) for v in views])
    return {"mutator_view": merged, "mutator_view_per_repetition": views,
            "mutator_pages_per_ms": med([mutator_pages_per_ms(r) for r in reps])}


def _median_or_none(xs):
    return None if not xs or any(x is None for x in xs) else _median(xs)


def load_measures(reps: List[dict]) -> dict:
    """What the machine did around each repetition's concurrent phase (issue: MOVE under load): TLB-shootdown and
    function-call IPIs (system-wide, /proc/interrupts; null where the kernel has no such row), shootdowns per
    1000 installed pages, the GC thread's context switches, faults, ioctl counts and mean pages per ioctl, and
    how many CPUs the scenario needed and had."""
    irq = [r.get("interrupts") or {} for r in reps]
    tlb = [i.get("tlb_shootdowns") for i in irq]
    cal = [i.get("function_call") for i in irq]
    per_k = [None if t is None or not r["pages"]["total"] else 1000.0 * t / r["pages"]["total"]
             for t, r in zip(tlb, reps)]
    c = lambda key: _median([r["counters"].get(key, 0) for r in reps])  # noqa: E731
    ioctl_move, ioctl_copy = c("ioctl_move"), c("ioctl_copy")
    ps = reps[0].get("page_size") if reps else None
    out = {
        "interrupts": {"tlb_shootdowns": _median_or_none(tlb), "function_call": _median_or_none(cal)},
        "interrupts_per_repetition": {"tlb_shootdowns": tlb, "function_call": cal},
        "shootdowns_per_1000_pages": _median_or_none(per_k),
        "machine": {
            "gc_voluntary_switches": c("gc_voluntary_switches"),
            "gc_involuntary_switches": c("gc_involuntary_switches"),
            "minor_faults": c("minor_faults"), "major_faults": c("major_faults"),
            "ioctl_move": ioctl_move, "ioctl_copy": ioctl_copy,
            "mean_pages_per_move": (c("bytes_moved") / ioctl_move / ps) if ioctl_move and ps else None,
            "mean_pages_per_copy": (c("bytes_copied") / ioctl_copy / ps) if ioctl_copy and ps else None,
            "cpus": reps[0].get("cpus") if reps else None,
            "threads_needed": reps[0].get("threads_needed") if reps else None,
        },
    }
    sw = [r.get("swap") or {} for r in reps]
    if any(s.get("pages_paged_out") for s in sw):
        out["swap"] = {k: _median_or_none([s.get(k) for s in sw])
                       for k in ("pages_paged_out", "swap_ins", "swap_outs", "major_faults")}
    return out


def _percentiles_us(samples: np.ndarray) -> dict:
    """True order statistics of the pooled samples (numpy's 'inverted_cdf': an actual sample, never interpolated)."""
    s = np.sort(samples.astype(np.float64))
    q = lambda p: float(np.percentile(s, p, method="inverted_cdf")) / 1e3  # noqa: E731
    return {"samples": int(s.size), "p50": q(50), "p90": q(90), "p99": q(99), "p99.9": q(99.9),
            "max": float(s[-1]) / 1e3}
