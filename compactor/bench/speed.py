"""Compaction speed: how far compaction sits from pure copying, in one run (issue 13's targets).

Two views of the same work. The compaction floor (measured in the core over the run's own plan, no collection
around it) gives ns per to-space page of a cold page copy, the live-stride copy (the same live strides copied, no
reference forwarding) and compact_page. The GC thread's compaction time per page it compacted comes from each
concurrent run. Both are set against the same run's hot-memcpy floor and live-stride copy.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

# Targets of issue 13 (ratios inside one run): compaction per to-space page at most 2.5x the hot-memcpy floor;
# as a stretch, at most 1.5x the live-stride copy.
TARGET_VS_MEMCPY = 2.5
TARGET_VS_LIVE_STRIDE = 1.5
COMPACTION_FLOOR_ROWS = ("page_copy", "live_stride_copy", "compact_page")


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def compaction_summary(limits: dict, runs: List[dict]) -> dict:
    """The report's "compaction" section: floor rows, each concurrent run's GC compaction per page, and ratios."""
    floor = {name: limits[name]["median_ns_per_page"] for name in ("memcpy",) + COMPACTION_FLOOR_ROWS
             if name in limits}
    memcpy, stride = floor.get("memcpy"), floor.get("live_stride_copy")
    gc = []
    for r in runs:
        if r.get("status") != "measured" or r["strategy"] == "stw":
            continue
        compact_ns = (r.get("gc_time_ns") or {}).get("compact")
        pages = r["pages"].get("total", 0) - r["pages"].get("by_mutators", 0)
        per_page = compact_ns / pages if compact_ns is not None and pages > 0 else None
        gc.append({"key": r["key"], "strategy": r["strategy"], "faults": r["faults"], "mutators": r["mutators"],
                   "kind": r.get("kind", "full"),
                   "pages_compacted_by_gc": pages, "compact_ns_per_page": per_page,
                   "compact_share_of_gc_thread": _ratio(compact_ns / 1e9 if compact_ns is not None else None,
                                                        r.get("median")),
                   "vs_memcpy": _ratio(per_page, memcpy), "vs_live_stride_copy": _ratio(per_page, stride)})
    full = [g for g in gc if g["kind"] == "full"] or gc  # the reference is a full collection when one ran
    ref = next((g for g in full if g["strategy"] == "copy" and g["mutators"] == 0 and g["faults"] == "sigbus"), None)
    ref = ref or next((g for g in full if g["mutators"] == 0), None)
    out: Dict[str, Any] = {
        "floor_ns_per_page": floor,
        "compact_page_vs_memcpy": _ratio(floor.get("compact_page"), memcpy),
        "compact_page_vs_live_stride_copy": _ratio(floor.get("compact_page"), stride),
        "gc_thread": gc,
        "reference_run": ref["key"] if ref else None,
        "targets": {"vs_memcpy_max": TARGET_VS_MEMCPY, "vs_live_stride_copy_max": TARGET_VS_LIVE_STRIDE},
    }
    measured = ref["vs_memcpy"] if ref else out["compact_page_vs_memcpy"]
    stretch = ref["vs_live_stride_copy"] if ref else out["compact_page_vs_live_stride_copy"]
    out["meets_vs_memcpy"] = None if measured is None else measured <= TARGET_VS_MEMCPY
    out["meets_vs_live_stride_copy"] = None if stretch is None else stretch <= TARGET_VS_LIVE_STRIDE
    return out


def render_line(summary: dict) -> Optional[str]:
    """One line for the console report, or None when nothing was measured."""
    f = summary.get("floor_ns_per_page") or {}
    if "compact_page" not in f:
        return None
    ref = next((g for g in summary["gc_thread"] if g["key"] == summary.get("reference_run")), None)
    fmt = lambda x: "-" if x is None else f"{x:.2f}x"  # noqa: E731
    text = (f"compaction per to-space page: compact_page {f['compact_page']:.0f} ns = "
            f"{fmt(summary['compact_page_vs_memcpy'])} the hot memcpy, "
            f"{fmt(summary['compact_page_vs_live_stride_copy'])} "
            f"the live-stride copy ({f.get('live_stride_copy', 0):.0f} ns)")
    if ref and ref["compact_ns_per_page"] is not None:
        text += (f"; GC thread ({ref['key']}) {ref['compact_ns_per_page']:.0f} ns = {fmt(ref['vs_memcpy'])} memcpy, "
                 f"{fmt(ref['vs_live_stride_copy'])} live-stride copy")
        if ref["compact_share_of_gc_thread"] is not None:
            text += f", {ref['compact_share_of_gc_thread']:.0%} of its time"
    t = summary["targets"]
    text += (f" (targets: <= {t['vs_memcpy_max']}x memcpy: {'met' if summary['meets_vs_memcpy'] else 'not met'}; "
             f"<= {t['vs_live_stride_copy_max']}x live-stride copy: "
             f"{'met' if summary['meets_vs_live_stride_copy'] else 'not met'})")
    return text
