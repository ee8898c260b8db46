"""How preparation and collection costs grow with the heap: `python -m compactor.bench scale`, runnable against any
installed build. It runs compactor/bench/scale.py of this checkout by path, so an older build's venv measures with
the same code (a before/after table):

    /path/to/old-venv/bin/python benchmarks/scale.py [--sizes 64MiB,256MiB,1GiB] [--json out.json] [--plot out.png]

Run it from outside the checkout's root (there `compactor/` would shadow the installed package).
"""

import importlib.util
import pathlib
import sys

if __name__ == "__main__":
    path = pathlib.Path(__file__).resolve().parent.parent / "compactor" / "bench" / "scale.py"
    spec = importlib.util.spec_from_file_location("compactor_bench_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.exit(module.main())
