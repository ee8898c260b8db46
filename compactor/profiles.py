"""Mutator profiles: named sets of the collection's app-like mutator options (think time, UI frames, allocation).

The one definition the bench (`--mutator-profile`), the sweep's profile axis, the tests and the docs use. Each
profile is {"options": collect() options, "description": one sentence}; `python -m compactor.bench
--list-profiles` prints them. Options a profile leaves out keep the core's defaults (think_ns 0, frame_hz 0,
alloc_rate 0, tlab 32 KiB, pre_pause_ms 10: see `python -m compactor options`).

Families:
- `stress`: the stress loop (no pause between access chains): today's bench scenario, the worst case for MOVE.
- `busy-<N>us`, `sleep-<N>us` (N = 1, 10, 100, 1000): N µs between access chains, spent computing on the CPU
  (busy: a MOVE's TLB shootdown still reaches that CPU) or blocked off it (sleep: the idle CPU takes only the
  shootdowns of the first MOVEs after each sleep, two on this x86 VM: the prices' `shootdowns_after_sleep`).
- `ui-60hz`, `ui-120hz`: a UI thread accessing for 30% of each frame, asleep until the next vsync.
- `<profile>+alloc`: the same, allocating ALLOC_RATE bytes per second per mutator into TLABs above the
  post-compact end (fresh pages resolved by the strategy: ZEROPAGE for copy, zero-and-MOVE for the MOVE family,
  hybrid as its priced policy decides for one page — ZEROPAGE where shootdowns are dear, as on this x86 VM).
- Short names: `busy` = busy-100us, `sleep` = sleep-100us, `ui` = ui-60hz, `alloc` = stress+alloc, and `app` =
  sleep-100us+alloc, the bench's app-like scenario (an app thread that works 100 µs between touching objects,
  off the CPU, and allocates).
"""

from __future__ import annotations

from typing import Any, Dict, List

Profile = Dict[str, Any]  # {"options": collect() options, "description": str}

ALLOC_RATE = 64 << 20  # bytes/s per mutator: a busy app thread's allocation rate (ART apps: tens of MB/s)
THINK_US = (1, 10, 100, 1000)
UI_HZ = (60, 120)
STRESS = "stress"
APP = "app"  # the bench's app-like scenario


def _base() -> Dict[str, Profile]:
    out: Dict[str, Profile] = {STRESS: {"options": {}, "description": "the stress loop: access chains back to back, no "
                                                                  "pause (the bench's scenario before profiles)"}}
    for how in ("busy", "sleep"):
        where = "computing on its CPU" if how == "busy" else "asleep, off its CPU"
        for us in THINK_US:
            out[f"{how}-{us}us"] = {"options": {"think_ns": us * 1000, "think": how},
                                    "description": f"{us} µs between access chains, {where}"}
    for hz in UI_HZ:
        out[f"ui-{hz}hz"] = {"options": {"frame_hz": float(hz), "frame_duty": 0.3},
                             "description": f"a UI thread at {hz} Hz: accesses for 30% of each frame, then sleeps "
                                            "until the next vsync"}
    return out


def _with_alloc(base: Dict[str, Profile]) -> Dict[str, Profile]:
    out = dict(base)
    for name, p in base.items():
        out[f"{name}+alloc"] = {"options": {**p["options"], "alloc_rate": ALLOC_RATE},
                                "description": p["description"] + f"; allocating {ALLOC_RATE >> 20} MiB/s per mutator "
                                                                  "into TLABs"}
    return out


PROFILES: Dict[str, Profile] = _with_alloc(_base())
ALIASES: Dict[str, str] = {"busy": "busy-100us", "sleep": "sleep-100us", "ui": "ui-60hz", "alloc": "stress+alloc",
                           APP: "sleep-100us+alloc"}


def names() -> List[str]:
    """Every profile name a user may give: the short names first, then the canonical ones."""
    return list(ALIASES) + list(PROFILES)


def canonical(name: str) -> str:
    """The canonical name of a profile or short name; KeyError for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in PROFILES:
        raise KeyError(name)
    return name


def options(name: str) -> Dict[str, Any]:
    """The collect() options of a profile (a copy); KeyError for an unknown one."""
    return dict(PROFILES[canonical(name)]["options"])


def options_for(name: str, mutators: int, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """The collect() options of a run of profile `name` with `mutators` threads: the profile's options (none
    without mutators: no app runs), overridden by `overrides` (the raw options given on the command line)."""
    return {**(options(name) if mutators else {}), **overrides}


def describe(name: str) -> str:
    """One line: the profile's description and options."""
    c = canonical(name)
    opts = ", ".join(f"{k}={v}" for k, v in PROFILES[c]["options"].items()) or "core defaults"
    alias = f" (= {c})" if c != name else ""
    return f"{name}{alias}: {PROFILES[c]['description']} [{opts}]"


def markdown() -> str:
    """The profiles as a Markdown table (the docs' table is this output)."""
    rows = ["| profile | options | what the mutators do |", "|---|---|---|"]
    for name, p in PROFILES.items():
        opts = ", ".join(f"`{k}={v}`" for k, v in p["options"].items()) or "(core defaults)"
        rows.append(f"| `{name}` | {opts} | {p['description']} |")
    rows += [f"| `{a}` | = `{c}` | short name |" for a, c in ALIASES.items()]
    return "\n".join(rows)
