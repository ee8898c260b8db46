"""What one bench run measures (BenchConfig) and its scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .. import profiles as _profiles
from ..collector import STRATEGIES
from .env import default_mutators
from .types import Scenario


@dataclass
class BenchConfig:
    heap: int = 256 << 20
    live: float = 0.5
    live_given: bool = False
    heap_given: bool = False
    heap_from: Optional[str] = None      # an HPROF dump
    hprof_heap: str = "app"
    heap_from_app: Optional[str] = None  # an app on the device whose heap is dumped
    garbage: str = "uniform"
    strategies: tuple = STRATEGIES
    faults: tuple = ("sigbus",)
    mutators: tuple = ()          # empty: default_mutators()
    batch: int = 64
    repeat: int = 5
    seed: int = 1
    floor_pages: int = 16384
    floor_repeat: int = 5
    runner: bool = False
    device: Optional[str] = None
    # collect() options passed to every run (CollectorConfig names): gc_cpu, mutator_cpus, backoff, move_min_run,
    # and the raw mutator options (think_ns, frame_hz, alloc_rate, ...), which override the profile's
    options: dict = field(default_factory=dict)
    # mutator profiles (compactor.profiles), each a scenario per strategy, fault mode and mutator count > 0: the
    # stress loop (today's scenario) and the app-like one
    profiles: tuple = (_profiles.STRESS, _profiles.APP)
    trace: Optional[str] = None  # --trace FILE: every measured collection into one Perfetto trace
    # --gc: the collections measured, each kind a scenario per strategy ("full": today's; "young": ART 16's young
    # collection of a generational heap, compactor.generations)
    gc: tuple = ("full",)
    # the generational heap's shares (HeapSpec names) when "young" is in gc: old_fraction, mid_fraction,
    # young_survival; None: a single-generation heap
    generations: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if not self.mutators:
            self.mutators = default_mutators()
        if self.options is None:  # an explicit options=None still means no options
            self.options = {}

    def scenarios(self) -> List[Scenario]:
        """Per collection kind (--gc, in the order given), strategy, fault mode and mutator count, one scenario per
        profile (one without mutators: no app runs, so its profile is "stress")."""
        out = []
        for k in self.gc:
            for s in self.strategies:
                if s == "stw":
                    out.append(Scenario("stw", "none", 0, kind=k))
                else:
                    out += [Scenario(s, f, m, p, k) for f in self.faults for m in self.mutators
                            for p in (self.profiles if m else (_profiles.STRESS,))]
        return out

    def scenario_options(self, sc: Scenario) -> dict:
        """The collect() options of one scenario: its profile's, overridden by the raw options given."""
        return _profiles.options_for(sc.profile, sc.mutators, self.options)
