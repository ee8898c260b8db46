"""The crossover: the mutators' fault pressure above which MOVE stops beating COPY (issue 18 item 4).

One point per mutator profile (runs that differ only in what the app's threads do): the best MOVE-based
strategy's median GC-thread time over COPY's (its `ratio_vs_copy_median`) against the pages that run's mutators
resolved themselves per ms of its concurrent phase (`mutator_pages_per_ms`). Sorted by that rate, the crossover is
where the ratio goes from below 1.0 (MOVE wins) to 1.0 or above, interpolated linearly between the two
neighbouring profiles; when noise makes it change side more than once, the change that separates the profiles
best. Used by the sweep (per live/mutators/batch cell) and by claim 1 of the bench.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from ..kernel_facts import MOVE_STRATEGIES


def points(rows: Iterable[dict], strategies: tuple = MOVE_STRATEGIES) -> List[dict]:
    """Per profile, the best of `strategies`' point (the best MOVE-based strategy by default): {profile, strategy,
    ratio, pages_per_ms, copy_pages_per_ms}. Rows need profile, strategy, ratio_vs_copy_median and
    mutator_pages_per_ms; rows without a ratio or a rate are skipped. Sorted by pages_per_ms."""
    best: Dict[str, dict] = {}
    copy_rate: Dict[str, Optional[float]] = {}
    for r in rows:
        p = r.get("profile", "stress")
        if r["strategy"] == "copy":
            copy_rate[p] = r.get("mutator_pages_per_ms")
        if r["strategy"] not in strategies:
            continue
        ratio, rate = r.get("ratio_vs_copy_median"), r.get("mutator_pages_per_ms")
        if ratio is None or rate is None:
            continue
        if p not in best or ratio < best[p]["ratio"]:
            best[p] = {"profile": p, "strategy": r["strategy"], "ratio": ratio, "pages_per_ms": rate}
    out = [dict(b, copy_pages_per_ms=copy_rate.get(p)) for p, b in best.items()]
    return sorted(out, key=lambda b: (b["pages_per_ms"], b["profile"]))


def crossover(pts: List[dict]) -> dict:
    """The fault rate where MOVE stops beating COPY among `pts` (as points() gives them).

    Returns {state, threshold_pages_per_ms, between, points, text}: state "crossed" (threshold interpolated
    between the neighbours `between`), "move wins throughout" or "move loses throughout" (threshold None: "not
    crossed in this grid"), "reversed" (MOVE loses at low rates and wins at high ones), "no points";
    `crossings` counts the changes of side, more than one when the ratio is not monotone in the rate (noise, or
    profiles that differ in more than their fault rate): the win-to-loss change named is the one with the fewest
    profiles on the wrong side of it (`on_the_wrong_side`: losses below plus wins above), the lowest on a tie."""
    pts = sorted(pts, key=lambda b: (b["pages_per_ms"], b["profile"]))
    out: dict = {"state": "no points", "threshold_pages_per_ms": None, "between": None, "points": pts,
                 "crossings": 0}
    if not pts:
        out["text"] = "no MOVE-based run with mutators to compare with COPY"
        return out
    wins = [p["ratio"] < 1.0 for p in pts]
    out["crossings"] = sum(a != b for a, b in zip(wins, wins[1:]))
    # Candidate crossings: neighbours where MOVE goes from winning to losing. With noise there may be several;
    # the one named separates the points best (fewest losses below it plus wins above it; the lowest on a tie).
    best = None
    for i, (a, b) in enumerate(zip(pts, pts[1:])):
        if a["ratio"] < 1.0 <= b["ratio"]:
            wrong = sum(not w for w in wins[:i + 1]) + sum(wins[i + 1:])
            if best is None or wrong < best[0]:
                best = (wrong, a, b)
    if best is not None:
        wrong, a, b = best
        dx, dr = b["pages_per_ms"] - a["pages_per_ms"], b["ratio"] - a["ratio"]
        x = a["pages_per_ms"] + (1.0 - a["ratio"]) * dx / dr if dr > 0 else a["pages_per_ms"]
        out.update(state="crossed", threshold_pages_per_ms=x, between=[a["profile"], b["profile"]],
                   on_the_wrong_side=wrong)
        out["text"] = (f"MOVE beats COPY while the app's threads resolve fewer than about {x:.2g} pages per ms "
                       f"of the collection themselves, and loses above that (interpolated between "
                       f"{_pt(a)} and {_pt(b)})")
        if out["crossings"] > 1:
            out["text"] += (f"; the ratio is not monotone in the rate here ({out['crossings']} changes of side; "
                            f"{wrong} of {len(pts)} profiles on the other side of this threshold)")
        return out
    if all(wins):
        out["state"] = "move wins throughout"
        out["text"] = (f"not crossed in this grid: MOVE beat COPY at every profile, up to {_pt(pts[-1])}")
    elif not any(wins):
        out["state"] = "move loses throughout"
        out["text"] = (f"not crossed in this grid: MOVE lost to COPY at every profile, even at {_pt(pts[0])}")
    else:
        out["state"] = "reversed"
        out["text"] = ("not crossed in this grid the usual way: MOVE loses at low fault rates and wins at high ones "
                       f"({_pt(pts[0])}; {_pt(pts[-1])})")
    return out


def _pt(p: dict) -> str:
    return f"{p['profile']}: {p['strategy']} {p['ratio']:.2f}x COPY at {p['pages_per_ms']:.2g} pages/ms"
