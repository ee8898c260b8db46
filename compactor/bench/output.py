"""Files a report is written to: whole or not at all (atomic_write), the CSV tables of the bench and the sweep."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from typing import Callable, Iterable, Optional


def atomic_write(path: str, data: bytes) -> None:
    """Writes `data` to `path` whole or not at all: a new temporary file (O_EXCL, private) in the same folder,
    renamed into place; the final file gets the usual mode (0666 less the umask)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".compactor-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def emit_report(report: dict, json_path: Optional[str], render: Callable[[dict], None]) -> None:
    """A report's output: `json_path` "-" prints the JSON alone on stdout; a path writes it there atomically, then
    `render` shows the report; None only renders it."""
    text = json.dumps(report, indent=2)
    if json_path == "-":
        sys.stdout.write(text + "\n")
        return
    if json_path:
        atomic_write(json_path, (text + "\n").encode())
    render(report)


def write_rows(path: str, header: list, rows: Iterable[list]) -> None:
    """A CSV file, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, buf.getvalue().encode())


# The mutator view's columns in the CSV files (one value per repetition; empty where the core had none)
MUTATOR_VIEW_COLUMNS = ("pages_resolved_share", "faults", "fault_p50_us", "fault_p99_us", "longest_stall_us",
                        "rate_during_vs_before", "new_objects", "frames", "frames_late")


def mutator_view_cells(r: dict, i: int) -> list:
    """Repetition i's mutator-view values of a run or cell, in MUTATOR_VIEW_COLUMNS order."""
    views = r.get("mutator_view_per_repetition") or []
    v = views[i] if i < len(views) else {}
    return ["" if v.get(k) is None else v[k] for k in MUTATOR_VIEW_COLUMNS]


# What a collection did by generation (a run's "generational", its median repetition's; empty for a runner's run)
GENERATIONAL_COLUMNS = ("scanned_bytes", "freed_bytes", "dirty_cards", "card_objects", "pages_mapped_back_move",
                        "pages_mapped_back_copy", "pages_compacted")


def write_bench_csv(report: dict, path: str) -> None:
    """One row per repetition of each measured run of a bench report (the columns before profiles first, the
    profile and the mutator view after them, then the collection kind and what it did by generation)."""
    env = report["environment"]

    def rows():
        for r in report["runs"]:
            if r["status"] != "measured":
                continue
            for i, g in enumerate(r["gc_thread_s"]):
                ratio = r["ratio_vs_copy"][i] if i < len(r["ratio_vs_copy"]) else ""
                gen = r.get("generational") or {}
                yield [r["strategy"], r["faults"], r["mutators"], i + 1, f"{g:.9f}", ratio, r["pause_s"][i],
                       r["heap_bytes"], r["live_bytes"], env["kernel"], env["where"], r.get("profile", "stress"),
                       *mutator_view_cells(r, i), r.get("kind", "full"),
                       *("" if gen.get(c) is None else gen[c] for c in GENERATIONAL_COLUMNS)]

    write_rows(path, ["strategy", "faults", "mutators", "repetition", "gc_thread_s", "ratio_vs_copy", "pause_s",
                      "heap_bytes", "live_bytes", "kernel", "where", "profile",
                      *("mutator_" + c for c in MUTATOR_VIEW_COLUMNS), "kind", *GENERATIONAL_COLUMNS], rows())


def write_sweep_csv(report: dict, path: str) -> None:
    """One row per repetition of each cell of a sweep report."""
    def rows():
        for r in report["cells"]:
            tlb = r["interrupts_per_repetition"]["tlb_shootdowns"]
            for i, g in enumerate(r["gc_thread_s"]):
                ratio = r["ratio_vs_copy"][i] if i < len(r["ratio_vs_copy"]) else ""
                t = tlb[i] if i < len(tlb) else None
                yield [r["live_fraction"], r["mutators"], r["batch"], r["strategy"], i + 1, f"{g:.9f}", ratio,
                       "" if t is None else t, "" if t is None else f"{1000 * t / r['pages']:.3f}",
                       r.get("profile", "stress"), *mutator_view_cells(r, i), r.get("kind", "full"),
                       r.get("old_fraction", 0.0)]

    write_rows(path, ["live_fraction", "mutators", "batch", "strategy", "repetition", "gc_thread_s", "ratio_vs_copy",
                      "tlb_shootdowns", "shootdowns_per_1000_pages", "profile",
                      *("mutator_" + c for c in MUTATOR_VIEW_COLUMNS), "kind", "old_fraction"], rows())
