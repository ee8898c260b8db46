"""The versioned JSON schema of `python -m compactor.bench --json` (documented in docs/bench-json.md)."""

from __future__ import annotations

from .. import profiles as _profiles
from ..collector import STRATEGIES

SCHEMA_ID = "compactor.bench/5"  # the report's schema; 2 added interrupts and load measures to each run; 3 added
                                  # the compaction floor rows to "limits" and the "compaction" section; 4 added
                                  # mutator profiles (a run's "profile", config "profiles") and the mutator view;
                                  # 5 added collection kinds (a run's required "kind", config "gc", "generations",
                                  # a run's "generational" and "art_metrics", the young claim)
SWEEP_SCHEMA_ID = "compactor.sweep/3"  # 2 added the profile axis, the mutator view per cell and "crossover"; 3 added
                                       # each cell's "ran_on", "machines", "retried", "failed" and "by_kernel"
LIFETIME_SCHEMA_ID = "compactor.lifetime/1"  # python -m compactor.bench lifetime --json
ACCEPTED_BY_COMPARE = ("compactor.bench/1", "compactor.bench/2", "compactor.bench/3", "compactor.bench/4", SCHEMA_ID)
SWEEPS_ACCEPTED_BY_COMPARE = ("compactor.sweep/2", SWEEP_SCHEMA_ID)

_num = {"type": ["number", "null"]}
# environment.move_kernel: the kernel's MOVE facts (compactor.kernel_facts.evaluate; `info --json` has the same)
_version_range = {"type": "array", "minItems": 2, "maxItems": 2,
                  "prefixItems": [{"type": "string"}, {"type": ["string", "null"]}]}
_move_kernel = {
    "type": "object",
    "required": ["known_bugs", "art_would_use_move", "advice"],
    "properties": {
        "known_bugs": {"type": "array", "items": {
            "type": "object", "required": ["id", "title", "affected", "fixed_in", "what", "source", "evidence"],
            "properties": {"affected": {"type": "array", "minItems": 1, "items": _version_range},
                           "fixed_in": {"type": ["array", "null"], "items": {"type": "string"}},
                           "evidence": {"enum": ["probed", "by version"]}}}},
        "art_would_use_move": {"type": "boolean"},
        "advice": {"type": "string", "minLength": 1},
    },
}
_profile = {"enum": _profiles.names()}
# the core's mutator view (NaN as null), medians over the repetitions
_mutator_view = {
    "type": "object",
    "required": ["pages_resolved_share", "fault_time_ms", "faults", "fault_p50_us", "fault_p99_us", "longest_stall_us",
                 "accesses_per_s_before", "accesses_per_s_during", "rate_during_vs_before", "app_slow_path_ms",
                 "suspend_ms", "fresh_pages", "new_objects", "allocated_bytes", "alloc_failures", "frames",
                 "frames_late"],
    "properties": {
        "fresh_pages": {"type": "object", "required": ["zeropage", "zero_and_move", "copy"],
                        "additionalProperties": _num},
    },
    "additionalProperties": {"type": ["number", "null", "object"]},
}
_mutator_fields = {
    "profile": _profile,
    "mutator_view": _mutator_view,
    "mutator_view_per_repetition": {"type": "array", "items": {"type": "object"}},
    "mutator_pages_per_ms": _num,
}
_crossover = {
    "type": "object",
    "required": ["state", "threshold_pages_per_ms", "between", "points", "crossings", "text"],
    "properties": {
        "state": {"enum": ["crossed", "move wins throughout", "move loses throughout", "reversed", "no points"]},
        "threshold_pages_per_ms": _num,
        "points": {"type": "array", "items": {
            "type": "object", "required": ["profile", "strategy", "ratio", "pages_per_ms"],
            "properties": {"profile": _profile, "ratio": {"type": "number"}, "pages_per_ms": {"type": "number"}}}},
        "text": {"type": "string"},
    },
}
# what a collection did by generation (compactor.collector.generational_metrics), its median repetition's
_count = {"type": "integer", "minimum": 0}
_generational = {
    "type": "object",
    "required": ["kind", "old_gen_end", "scanned_bytes", "freed_bytes", "dirty_cards", "card_objects", "old_pages",
                 "old_pages_updated", "pages_mapped_back_move", "pages_mapped_back_copy", "pages_compacted",
                 "app_slow_path_ms"],
    "properties": {"kind": {"enum": ["young", "full"]}, "old_gen_end": _count, "scanned_bytes": _count,
                   "freed_bytes": {"type": "integer"}, "dirty_cards": _count, "card_objects": _count,
                   "old_pages": _count, "old_pages_updated": _count, "pages_mapped_back_move": _count,
                   "pages_mapped_back_copy": _count, "pages_compacted": _count, "app_slow_path_ms": _num},
}
# ART's metric names (runtime/gc/heap.cc) for a young or a full collection
_art_metrics = {"type": "object", "minProperties": 3, "maxProperties": 3,
                "propertyNames": {"enum": ["YoungGcScannedBytes", "YoungGcFreedBytes", "AppSlowPathDuringYoungGc",
                                           "FullGcScannedBytes", "FullGcFreedBytes", "AppSlowPathDuringFullGc"]},
                "additionalProperties": _num}
_run = {
    "type": "object",
    "required": ["strategy", "faults", "mutators", "kind", "heap_bytes", "live_bytes", "status", "verified"],
    "properties": {
        "strategy": {"enum": list(STRATEGIES)},
        "kind": {"enum": ["young", "full"]},
        "generational": _generational,
        "art_metrics": _art_metrics,
        "ratio_vs_full": {"type": "array", "items": {"type": "number"}},
        "ratio_vs_full_median": _num,
        "faults": {"enum": ["sigbus", "thread", "none"]},
        "mutators": {"type": "integer", "minimum": 0},
        "heap_bytes": {"type": "integer"}, "live_bytes": {"type": "integer"},
        "status": {"enum": ["measured", "unsupported"]},
        "gc_thread_s": {"type": "array", "items": {"type": "number"}},
        "median": _num, "min": _num, "max": _num,
        "ratio_vs_copy": {"type": "array", "items": {"type": "number"}},
        "ratio_vs_copy_median": _num,
        "pages": {"type": "object", "additionalProperties": {"type": "integer"}},
        "counters": {"type": "object", "additionalProperties": {"type": "integer"}},
        "gc_time_ns": {"type": "object"},
        "fault_latency_us": {"type": "object"},
        "verified": {"type": ["boolean", "null"]},
        "interrupts": {"type": "object", "required": ["tlb_shootdowns", "function_call"],
                       "properties": {"tlb_shootdowns": _num, "function_call": _num}},
        "shootdowns_per_1000_pages": _num,
        "machine": {"type": "object"},
        **_mutator_fields,
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "compactor.bench report",
    "type": "object",
    "required": ["schema", "environment", "limits", "runs", "claims", "compaction"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "environment": {
            "type": "object",
            "required": ["kernel", "arch", "page_size", "cpus", "features", "where", "emulated", "move_kernel"],
            "properties": {"page_size": {"type": "integer"}, "features": {"type": "array", "items": {"type": "string"}},
                           "where": {"enum": ["host", "device"]}, "emulated": {"type": "boolean"},
                           "move_kernel": _move_kernel},
        },
        "limits": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["name", "median_ns_per_page", "ns_per_page"]}},
        "config": {"type": "object", "required": ["profiles", "profile_options", "gc", "generations"],
                   "properties": {"profiles": {"type": "array", "items": _profile, "minItems": 1},
                                  "gc": {"type": "array", "minItems": 1, "items": {"enum": ["young", "full"]}},
                                  "generations": {"anyOf": [{"type": "null"}, {
                                      "type": "object", "required": ["old_fraction", "mid_fraction",
                                                                     "young_survival"],
                                      "additionalProperties": {"type": "number"}}]}}},
        "runs": {"type": "array", "items": _run},
        "compaction": {
            "type": "object",
            "required": ["floor_ns_per_page", "compact_page_vs_memcpy", "compact_page_vs_live_stride_copy", "gc_thread",
                         "reference_run", "targets", "meets_vs_memcpy", "meets_vs_live_stride_copy"],
            "properties": {
                "floor_ns_per_page": {"type": "object", "additionalProperties": {"type": "number"}},
                "compact_page_vs_memcpy": _num, "compact_page_vs_live_stride_copy": _num,
                "gc_thread": {"type": "array", "items": {
                    "type": "object", "required": ["key", "compact_ns_per_page", "vs_memcpy", "vs_live_stride_copy"]}},
                "meets_vs_memcpy": {"type": ["boolean", "null"]},
                "meets_vs_live_stride_copy": {"type": ["boolean", "null"]},
            },
        },
        "claims": {"type": "array", "minItems": 3, "items": {
            "type": "object", "required": ["id", "seed_text", "seed_value", "measured", "holds", "where", "verdict"],
            # seed_value: the seed's figure; null for a claim the seed did not make (move-in-young-collections)
            "properties": {"holds": {"enum": ["yes", "direction only", "no", "not measured"]},
                           "crossover": _crossover}}},
    },
}

_cell = {
    "type": "object",
    "required": ["live_fraction", "mutators", "batch", "profile", "strategy", "gc_thread_s", "median",
                 "ratio_vs_copy", "ratio_vs_copy_median", "verified", "pages", "interrupts",
                 "shootdowns_per_1000_pages", "mutator_view", "mutator_pages_per_ms", "ran_on"],
    "properties": {
        "strategy": {"enum": [s for s in STRATEGIES if s != "stw"]},
        "mutators": {"type": "integer", "minimum": 0}, "batch": {"type": "integer", "minimum": 1},
        "gc_thread_s": {"type": "array", "items": {"type": "number"}},
        "ratio_vs_copy": {"type": "array", "items": {"type": "number"}},
        "median": {"type": "number"}, "ratio_vs_copy_median": _num, "verified": {"type": "boolean"},
        "shootdowns_per_1000_pages": _num,
        "ran_on": {"type": "string", "minLength": 1},  # the machine that ran the cell: a key of "machines"
        # sweep --gc young: the cell's heap's old generation share and its collection (absent: full, share 0)
        "kind": {"enum": ["young", "full"]}, "old_fraction": {"type": "number", "minimum": 0},
        "generational": _generational, "art_metrics": _art_metrics,
        **_mutator_fields,
    },
}
# a worker that died under a cell (compactor.bench.cluster)
_death = {"type": "object", "required": ["worker", "name", "host", "pid"]}
_cell_of = {"required": ["key", "live_fraction", "mutators", "batch", "profile", "attempts", "died"],
            "properties": {"attempts": {"type": "integer", "minimum": 0}, "died": {"type": "array", "items": _death}}}
_side_by_side = {"type": "object", "required": ["key", "groups", "rows"],
                 "properties": {"groups": {"type": "array", "minItems": 2, "items": {
                     "type": "object", "required": ["name", "machines", "cells"]}},
                     "rows": {"type": "array", "items": {
                         "type": "object", "required": ["live_fraction", "mutators", "batch", "profile", "strategy",
                                                        "median", "ratio_vs_copy_median"]}}}}
SWEEP_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "compactor.bench sweep report",
    "type": "object",
    "required": ["schema", "environment", "config", "cells", "hybrid_vs_best", "crossover", "machines", "retried",
                 "failed", "by_kernel"],
    "properties": {
        "schema": {"const": SWEEP_SCHEMA_ID},
        "environment": {"type": "object", "required": ["kernel", "move_kernel"],
                        "properties": {"move_kernel": _move_kernel}},
        "config": {"type": "object", "required": ["grid", "heap_bytes", "planes", "live", "mutators", "batch",
                                                  "profiles", "strategies", "repeat", "faults", "options"],
                   "properties": {"grid": {"enum": ["default", "quick", "full", "custom", "young", "young-quick",
                                                    "young-custom"]},
                                  "gc": {"enum": ["full", "young"]},  # absent: full (sweeps before --gc)
                                  "old_fractions": {"type": "array", "items": {"type": "number"}},
                                  "profiles": {"type": "array", "items": _profile}}},
        "cells": {"type": "array", "items": _cell},
        "machines": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "required": ["kernel", "arch", "page_size"]}},
        "retried": {"type": "array", "items": {"allOf": [{"type": "object", "required": ["delivered_by"]},
                                                         {"type": "object", **_cell_of}]}},
        "failed": {"type": "array", "items": {"allOf": [{"type": "object", "required": ["reason"]},
                                                        {"type": "object", **_cell_of}]}},
        "by_kernel": {"anyOf": [{"type": "null"}, _side_by_side]},
        "crossover": {"type": "object", "required": ["groups", "headline"],
                      "properties": {"groups": {"type": "array", "items": {
                          "allOf": [_crossover, {"type": "object",
                                                 "required": ["live_fraction", "mutators", "batch", "profiles"]}]}},
                          "headline": {"anyOf": [{"type": "null"}, _crossover]}}},
    },
}

_lifetime_kind = {"type": "object", "required": ["count", "gc_thread_s", "mean_gc_thread_s", "freed_bytes"],
                  "properties": {"count": {"type": "integer", "minimum": 0}, "gc_thread_s": {"type": "number"},
                                 "mean_gc_thread_s": _num, "freed_bytes": {"type": "integer"}}}
LIFETIME_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "compactor.bench lifetime report",
    "type": "object",
    "required": ["schema", "environment", "config", "cycles", "strategies"],
    "properties": {
        "schema": {"const": LIFETIME_SCHEMA_ID},
        "environment": {"type": "object", "required": ["kernel", "move_kernel"],
                        "properties": {"move_kernel": _move_kernel}},
        "config": {"type": "object", "required": ["heap_bytes", "cycles", "alloc_bytes", "generations", "strategies",
                                                  "faults", "mutators", "seed", "young_throughput_adjustment"],
                   "properties": {"cycles": {"type": "integer", "minimum": 1},
                                  "strategies": {"type": "array", "minItems": 1,
                                                 "items": {"enum": [s for s in STRATEGIES if s != "stw"]}}}},
        "cycles": {"type": "array", "items": {
            "type": "object",
            "required": ["cycle", "strategy", "kind", "why", "verified", "gc_thread_s", "pause_s", "freed_bytes",
                         "scanned_bytes", "used_bytes", "post_compact_end", "old_gen_end", "dirty_cards",
                         "pages_mapped_back", "pages_compacted", "allocated_bytes", "throughput_bytes_per_s"],
            "properties": {"cycle": {"type": "integer", "minimum": 1}, "kind": {"enum": ["young", "full"]},
                           "verified": {"const": True}, "gc_thread_s": {"type": "number", "minimum": 0},
                           "freed_bytes": {"type": "integer"}, "why": {"type": "string", "minLength": 1}}}},
        "strategies": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "required": ["collections", "verified", "gc_thread_s", "freed_bytes", "young", "full",
                                           "gc_thread_vs_copy"],
            "properties": {"young": _lifetime_kind, "full": _lifetime_kind, "verified": {"const": True},
                           "gc_thread_vs_copy": _num}}},
    },
}
