"""The sweep's grids: planes of axes (live fraction, mutators, batch, mutator profile), their cells, and the
default, quick and full grids.

A grid is a union of planes, each the full product of its axes; a cell is (live, mutators, batch, profile), each
run with every strategy. A cell without mutators has no app, so its profile is always "stress" (the duplicate cells
that makes are dropped).

Why the default varies axes in two planes instead of all at once: the heap's structure (live fraction, batch)
decides how long the GC thread's runs are and so how much a MOVE saves; the app's behaviour (the profile) decides
how often mutators cut those runs and take pages themselves, each a TLB shootdown for MOVE. The structure plane maps
live x mutators x batch under the stress loop (the sweep's map before profiles, coarser); the behaviour plane runs
every profile at the bench's heap shape (50% live, batch 64) with 1 mutator (CPUs - 1 on a 2-CPU machine: no
oversubscription) and 2, which is where the crossover is read. The full product (--full) is 20 times larger.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .. import profiles as _profiles

Cell = Tuple[float, int, int, str]  # live fraction, mutators, batch, profile

ALL_PROFILES = tuple(_profiles.PROFILES)  # stress; busy and sleep 1-1000 us; ui 60, 120 Hz; each with +alloc
QUICK_PROFILES = ("stress", "busy-10us", "busy-1000us", "sleep-10us", "sleep-100us", "sleep-1000us", "ui-60hz",
                  "stress+alloc", "sleep-100us+alloc")

STRATEGIES = ("copy", "move", "hybrid")
DEFAULT: Dict[str, Any] = {
    "name": "default", "heap": 64 << 20, "strategies": STRATEGIES, "repeat": 3,
    "planes": [{"live": (0.1, 0.5, 0.9), "mutators": (0, 1, 2), "batch": (1, 64, 512), "profiles": ("stress",)},
               {"live": (0.5,), "mutators": (1, 2), "batch": (64,), "profiles": ALL_PROFILES}]}
QUICK: Dict[str, Any] = {
    "name": "quick", "heap": 16 << 20, "strategies": STRATEGIES, "repeat": 2,
    "planes": [{"live": (0.25, 0.5, 0.75), "mutators": (0, 2), "batch": (1, 64, 512), "profiles": ("stress",)},
               {"live": (0.5,), "mutators": (1,), "batch": (64,), "profiles": QUICK_PROFILES}]}
FULL: Dict[str, Any] = {
    "name": "full", "heap": 64 << 20, "strategies": STRATEGIES, "repeat": 3,
    "planes": [{"live": (0.1, 0.3, 0.5, 0.7, 0.9), "mutators": (0, 1, 2, 4), "batch": (1, 16, 64, 512),
                "profiles": ALL_PROFILES}]}
AXES = ("live", "mutators", "batch", "profiles")

# Young collections (sweep --gc young): the old generation's share of the space is the axis, one heap per share
# (0: today's single-generation heap at the plane's live fraction, a full collection; above 0: a generational heap,
# mid 5%, young survival 10%, a young collection), each with the plane's mutators, batch and profile. Small on
# purpose: 3 shares x 2 mutator counts x 3 strategies x 3 repetitions of 64 MiB (about a minute on 2 CPUs).
YOUNG: Dict[str, Any] = {
    "name": "young", "heap": 64 << 20, "strategies": STRATEGIES, "repeat": 3, "old": (0.0, 0.5, 0.8),
    "planes": [{"live": (0.5,), "mutators": (0, 1), "batch": (64,), "profiles": ("stress",)}]}
YOUNG_QUICK: Dict[str, Any] = {
    "name": "young-quick", "heap": 16 << 20, "strategies": STRATEGIES, "repeat": 2, "old": (0.0, 0.5, 0.8),
    "planes": [{"live": (0.5,), "mutators": (0,), "batch": (64,), "profiles": ("stress",)}]}


def cells(planes: List[dict]) -> List[Cell]:
    """Every cell of the planes, in plane order, without duplicates (profile "stress" without mutators)."""
    out: List[Cell] = []
    seen = set()
    for pl in planes:
        for f in pl["live"]:
            for m in pl["mutators"]:
                for b in pl["batch"]:
                    for p in (pl["profiles"] if m else ("stress",)):
                        c = (f, m, b, p)
                        if c not in seen:
                            seen.add(c)
                            out.append(c)
    return out


def custom(base: dict, given: Dict[str, Any]) -> List[dict]:
    """One plane: the axes given on the command line, the others from the base grid's first plane (the structure
    plane of the default and quick grids, whose profile is the stress loop; the full grid's only plane)."""
    first = base["planes"][0]
    return [{k: tuple(given[k]) if given.get(k) else first[k] for k in AXES}]


def union(planes: List[dict], axis: str) -> list:
    """The values an axis takes over the planes, in first-seen order."""
    out: list = []
    for pl in planes:
        out += [v for v in pl[axis] if v not in out]
    return out
