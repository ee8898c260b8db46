"""The plan file: one self-contained file with the heap (object table and roots), the plan arrays and the expected
verification digest, so that the native runner on a device executes exactly this plan. Format: docs/plan-file.md,
defined once in native/include/compactor/plan_file_format.hpp. Written and read (and validated field by field) by
the native core, for Python and the runner alike; this module decides only what a plan's file carries besides its
arrays (digest, seed, description). planning.Plan.save/load build on it (no import back)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict

from . import _native

if TYPE_CHECKING:
    from .heap import StrPath
    from .planning import Plan


def write_plan_file(plan: Plan, path: StrPath) -> None:
    """Writes ``plan`` (a planning.Plan, and its heap) to ``path`` atomically: the native writer fills a temporary
    file beside it and renames it into place, so no partial file is ever left (PlanFileError for an inconsistent
    plan, SystemCallError when the file cannot be written). A heap loaded from a plan file keeps that file's
    description and seed, so a loaded plan saves byte-identical."""
    heap = plan.heap
    digest = plan.expected_digest if plan.expected_digest is not None else heap.pristine_digest()[0]
    origin = heap.origin or {}
    desc = origin["description"] if "description" in origin else json.dumps(heap.describe())
    seed = origin.get("seed", heap.spec.seed if heap.spec is not None else 0)
    _native.save_plan_file(os.fspath(path), plan.native, heap.native_table, digest, seed, desc)


def read_plan_file(path: StrPath) -> Dict[str, Any]:
    """The fields and arrays of a plan file, read and validated by the native core (raises PlanFileError naming the
    problem). planning.Plan.load rebuilds the plan and its heap from them."""
    return _native.load_plan_file(os.fspath(path))
