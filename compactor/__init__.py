"""compactor: an emulator of Android ART's concurrent heap compaction over real Linux userfaultfd.

The Python layer builds heaps, marks and plans (numpy); the C++ core (``compactor._native``) owns everything on the
hot path: userfaultfd, page compaction, page installation, fault handling, mutator threads and timing.
"""

# First: in a checkout's root the source folder shadows the installed package; load the installed copy instead
# (or fail naming both). After a swap, the imports below bind names of the installed copy, already loaded.
from ._checkout import use_installed_copy as _use_installed_copy

_use_installed_copy(__name__, __file__)

# Must run after _use_installed_copy above, so that it binds the installed copy's names, hence E402.
from .errors import (  # noqa: E402
    HeapCorruption,
    HprofError,
    InsufficientMemory,
    KernelMoveWarning,
    PlanFileError,
    SystemCallError,
    UffdError,
    UffdUnavailable,
    WatchdogTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "HeapCorruption", "HprofError", "InsufficientMemory", "KernelMoveWarning", "PlanFileError", "SystemCallError",
    "UffdError", "UffdUnavailable", "WatchdogTimeout",
    "__version__",
]

# generations and uffd: modules a collection reaches lazily, loaded now: a process that drops privileges after
# `import compactor` may no longer read the installed package (test_a_collection_after_import_opens_no_file...).
from . import generations, uffd  # noqa: E402, F401
from .collector import CollectionResult, collect  # noqa: E402
from .heap import Heap, HeapSpec, parse_size  # noqa: E402
from .planning import Plan, plan  # noqa: E402

__all__ += ["CollectionResult", "Heap", "HeapSpec", "Plan", "collect", "parse_size", "plan"]
