"""python -m compactor {info,options,bench,device} ..."""

from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"info": "compactor.info", "options": "compactor.options", "bench": "compactor.bench.cli",
                "device": "compactor.device.__main__"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: python -m compactor {info,options,bench,device} [options]\n"
              "  info    what this machine offers (kernel, page size, userfaultfd features, MOVE, SIGBUS)\n"
              "  options the options of a collection: collect() keywords and runner flags (--json)\n"
              "  bench   the benchmark (same as python -m compactor.bench)\n"
              "  device  emulated arm64 devices and probes over ADB (same as python -m compactor.device)",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    rc: int = importlib.import_module(commands[argv[0]]).main(argv[1:])  # every command's main() returns its status
    return rc


if __name__ == "__main__":
    sys.exit(main())
