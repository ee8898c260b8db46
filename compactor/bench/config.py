"""What one bench run measures (BenchConfig) and its scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

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
    # collect() options passed to every run (CollectorConfig names): gc_cpu, mutator_cpus, backoff, move_min_run
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.mutators:
            self.mutators = default_mutators()
        if self.options is None:  # an explicit options=None still means no options
            self.options = {}

    def scenarios(self) -> List[Scenario]:
        out = []
        for s in self.strategies:
            if s == "stw":
                out.append(Scenario("stw", "none", 0))
            else:
                out += [Scenario(s, f, m) for f in self.faults for m in self.mutators]
        return out
