"""The versioned JSON schema of `python -m compactor.bench --json` (documented in docs/bench-json.md)."""

from __future__ import annotations

from ..collector import STRATEGIES

SCHEMA_ID = "compactor.bench/3"  # the report's schema; 2 added interrupts and load measures to each run; 3 added
                                  # the compaction floor rows to "limits" and the "compaction" section
SWEEP_SCHEMA_ID = "compactor.sweep/1"
ACCEPTED_BY_COMPARE = ("compactor.bench/1", "compactor.bench/2", SCHEMA_ID)

_num = {"type": ["number", "null"]}
_run = {
    "type": "object",
    "required": ["strategy", "faults", "mutators", "heap_bytes", "live_bytes", "status", "verified"],
    "properties": {
        "strategy": {"enum": list(STRATEGIES)},
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
            "required": ["kernel", "arch", "page_size", "cpus", "features", "where", "emulated"],
            "properties": {"page_size": {"type": "integer"}, "features": {"type": "array", "items": {"type": "string"}},
                           "where": {"enum": ["host", "device"]}, "emulated": {"type": "boolean"}},
        },
        "limits": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["name", "median_ns_per_page", "ns_per_page"]}},
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
            "properties": {"holds": {"enum": ["yes", "direction only", "no", "not measured"]}}}},
    },
}
