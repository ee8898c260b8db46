"""The heap a bench run compacts: generated (single-generation, or generational for --gc young), or loaded from an
HPROF dump (a file, or an app's heap on a device)."""

from __future__ import annotations

from typing import Optional, Tuple

from ..heap import Heap, HeapSpec
from .config import BenchConfig
from .types import BenchError


def real_heap(cfg: BenchConfig, path: str, page_size: Optional[int]) -> Heap:
    """The heap of an HPROF dump; --heap picks the number of copies (at least one), --live a live fraction."""
    from ..errors import HprofError

    live = cfg.live if cfg.live_given else None
    try:
        heap = Heap.from_hprof(path, heap=cfg.hprof_heap, live_fraction=live, seed=cfg.seed, page_size=page_size)
        if cfg.heap_given and cfg.heap > heap.used_end:
            heap = Heap.from_hprof(path, heap=cfg.hprof_heap, scale=max(1, cfg.heap // max(heap.used_end, 1)),
                                   live_fraction=live, seed=cfg.seed, page_size=page_size)
    except (HprofError, ValueError) as e:
        raise BenchError(f"--heap-from {path}: {e}", 2) from None
    return heap


def build_heap(cfg: BenchConfig, executor, tick) -> Tuple[Heap, Optional[str]]:
    """The heap of this run and the dump it came from (None: generated)."""
    tick("generating the heap", 0, 1)
    dump = cfg.heap_from
    if cfg.heap_from_app:
        tick(f"dumping the heap of {cfg.heap_from_app} on the device", 0, 1)
        dump = executor.dump_app_heap(cfg.heap_from_app)
    if dump:
        return real_heap(cfg, dump, executor.page_size), dump
    if cfg.generations:  # --gc young: a generational heap (compactor.generations), its shares from the flags
        try:
            spec = HeapSpec(size=cfg.heap, seed=cfg.seed, **cfg.generations)
        except ValueError as e:
            raise BenchError(f"generational heap: {e}", 2) from None
        return Heap.generate(spec, page_size=executor.page_size), dump
    heap = Heap.generate(HeapSpec(size=cfg.heap, live_fraction=cfg.live, garbage=cfg.garbage, seed=cfg.seed),
                         page_size=executor.page_size)
    return heap, dump
