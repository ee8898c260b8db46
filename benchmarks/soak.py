"""The soak (issue 22): seeded random configurations (strategy, fault mode, mutators and their profile, batch,
heap shape, injected errors, the error-path hooks, a swapped share where swap is active) collected back to back
in one process, every collection verified; open fds and threads at the end equal to the start, mappings within a
few lines, RSS growth at most 1 MiB per 1,000 collections (plus a small fixed allowance). Exit 0: pass; 1: a
collection failed or a resource grew beyond its bound; 2: bad arguments.

    python benchmarks/soak.py --minutes N | --collections N [--seed S] [--json FILE] [--quiet]

The configurations and the verdict are compactor/bench/soak.py (importable: the tests call them).
"""

import sys

from compactor.bench.soak import main

if __name__ == "__main__":
    sys.exit(main())
