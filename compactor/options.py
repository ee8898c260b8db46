"""The options of a collection, as the core defines them once (native/include/compactor/config_options.def), and
`python -m compactor options`: the table as Markdown (the README's options table is this output) or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Optional

from . import _native


def option_table() -> List[Dict[str, Any]]:
    """One dict per option, in the table's order: name, flag (compactor-runner's), type (enum, uint, int, real,
    bool, cpus), default, lowest, highest, unit, choices, help. Everything else that lists options is generated
    from it or tested against it."""
    return list(_native.config_options())


def _values(o: Dict[str, Any]) -> str:
    if o["type"] == "uint-or-auto":
        return f"`auto` \\| {o['lowest']} to {o['highest']} {o['unit']}".rstrip()
    if o["choices"]:
        return " \\| ".join(f"`{c}`" for c in o["choices"])
    if o["type"] == "bool":
        return "`true` \\| `false`"
    if o["type"] == "cpus":
        return "CPU list"
    unit = f" {o['unit']}" if o["unit"] else ""
    return f"{o['lowest']} to {o['highest']}{unit}"


def markdown() -> str:
    """The options table in Markdown: option, runner flag, values, default, what it does."""
    rows = ["| option | runner flag | values | default | what it does |", "|---|---|---|---|---|"]
    for o in option_table():
        default = f"`{o['default']}`" if o["default"] != "" else "(none)"
        rows.append(f"| `{o['name']}` | `{o['flag']}` | {_values(o)} | {default} | {o['help'].replace('|', '/')} |")
    return "\n".join(rows)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compactor options",
                                 description="The options of a collection (collect() keywords, runner flags).")
    ap.add_argument("--json", action="store_true", help="the table as JSON instead of Markdown")
    args = ap.parse_args(argv)
    print(json.dumps(option_table(), indent=1) if args.json else markdown())
    return 0
