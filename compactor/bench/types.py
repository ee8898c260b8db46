"""Types shared by every module of the bench (the bottom of its import graph: imports nothing from the package)."""

from __future__ import annotations

from dataclasses import dataclass


class BenchError(Exception):
    """A benchmark that cannot run or whose heap failed verification; carries the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # pickled with its status (a cluster's worker raises it, the client reports it)
        return (type(self), (str(self), self.status))


@dataclass(frozen=True)
class Scenario:
    strategy: str
    faults: str
    mutators: int
    profile: str = "stress"  # a compactor.profiles name; without mutators always "stress" (no app runs)
    kind: str = "full"  # the collection: "full", or "young" (a generational heap's young collection, bench --gc)

    @property
    def key(self) -> str:
        """strategy/faults/mutators, and /profile unless the profile is the stress loop (keys of reports before
        profiles stay valid), and /young for a young collection (full collections' keys are unchanged)."""
        base = f"{self.strategy}/{self.faults}/{self.mutators}"
        base = base if self.profile == "stress" else f"{base}/{self.profile}"
        return base if self.kind == "full" else f"{base}/{self.kind}"


class RunFailed(BenchError):
    """One collection could not run (the executor failed, not the heap); the driver names the run."""
