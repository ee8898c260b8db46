"""The heap model: a generator of ART-like moving spaces (vectorized numpy, deterministic from a seed), the object
table it produces, and the native moving space the table is materialized into.

Every object in [0, used_end) is tiled without gaps (live and garbage alike, as in a bump-pointer space); the tail
above ``used_end`` is free. Roots live outside the moving space: an array of object indices.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _native, memory
from .layout import MAX_HEAP_SIZE, MIN_OBJECT_SIZE, identity_of, max_refs, payload_offset

if TYPE_CHECKING:
    from .generations import Generations

GARBAGE_PATTERNS = ("uniform", "clustered", "dense-prefix")

StrPath = Union[str, "os.PathLike[str]"]  # a path as open() takes it

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}


def parse_size(text: Union[str, int]) -> int:
    """'256MiB', '64M', '1GiB', '4096' -> bytes (binary units). Raises ValueError naming the input."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"size must be positive, got {text}")
        return text
    m = _SIZE_RE.match(str(text))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"malformed size {text!r}: use a number with an optional unit, e.g. 64MiB, 1GiB, 4096")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value <= 0 or value != int(value):
        raise ValueError(f"malformed size {text!r}: must be a positive whole number of bytes")
    return int(value)


@dataclass(frozen=True)
class HeapSpec:
    """What to generate.

    size: bytes of moving space (rounded up to the page size when materialized); live_fraction: share of the
    objects that stay reachable; sizes: "art" (mostly 16-64 B objects, some up to 256 B, a few arrays up to
    4 KiB), or a sequence of object sizes to draw from uniformly; refs_per_object: mean reference slots of an
    ordinary object; garbage: "uniform", "clustered" (live and dead regions of ~64 KiB) or "dense-prefix" (a leading
    region almost fully live, as ART's black-dense prefix); roots: how many root references (more are added when
    the reachability tree needs them); seed: everything is deterministic from it.

    Generations (compactor.generations; ``old_fraction=0``, the default, is a single-generation heap and the
    fields below are unused): old_fraction and mid_fraction: shares of the space in the old generation (at the
    bottom, ``old_live`` of its objects live, as after earlier collections) and the mid generation (above it,
    ``mid_survival`` live); the young generation fills the rest, ``young_survival`` of its objects reachable;
    old_to_young: the share of the young and mid object trees held only from old objects (through dirty cards);
    stale_cards: the share of clean cards dirtied by stores since overwritten. ``live_fraction`` and ``garbage``
    do not apply to generational heaps.
    """

    size: int = 64 << 20
    live_fraction: float = 0.5
    sizes: Union[str, Tuple[int, ...]] = "art"
    refs_per_object: float = 2.0
    garbage: str = "uniform"
    roots: int = 1024
    seed: int = 0
    old_fraction: float = 0.0
    mid_fraction: float = 0.0
    young_survival: float = 0.1
    old_live: float = 0.9
    mid_survival: float = 0.5
    old_to_young: float = 0.2
    stale_cards: float = 0.02

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", parse_size(self.size))
        if not isinstance(self.sizes, str):
            object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        if self.size > MAX_HEAP_SIZE:
            raise ValueError(f"heap size {self.size} exceeds the 32-bit reference limit ({MAX_HEAP_SIZE} bytes)")
        if not 0.0 <= self.live_fraction <= 1.0:
            raise ValueError(f"live_fraction must lie in [0, 1], got {self.live_fraction}")
        if self.garbage not in GARBAGE_PATTERNS:
            raise ValueError(f"unknown garbage pattern {self.garbage!r}; choose one of {', '.join(GARBAGE_PATTERNS)}")
        if self.refs_per_object < 0:
            raise ValueError("refs_per_object must be non-negative")
        if self.roots < 1:
            raise ValueError("roots must be at least 1")
        for name in ("old_fraction", "mid_fraction", "young_survival", "old_live", "mid_survival", "old_to_young",
                     "stale_cards"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {v}")
        if self.old_fraction + self.mid_fraction > 0.95:
            raise ValueError(f"old_fraction + mid_fraction must leave the young generation at least 5% of the space, "
                             f"got {self.old_fraction} + {self.mid_fraction}")
        if self.mid_fraction > 0 and self.old_fraction == 0:
            raise ValueError("mid_fraction needs an old generation: set old_fraction > 0 too")
        if isinstance(self.sizes, str):
            if self.sizes != "art":
                raise ValueError(f"sizes must be 'art' or a sequence of object sizes, got {self.sizes!r}")
        else:
            if not self.sizes or any(s < MIN_OBJECT_SIZE or s % 8 for s in self.sizes):
                raise ValueError(f"object sizes must be multiples of 8 and at least {MIN_OBJECT_SIZE}: {self.sizes}")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["sizes"] = self.sizes if isinstance(self.sizes, str) else list(self.sizes)
        return d


def _art_sizes(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    # Every draw is made for all n objects (the stream fixes the heap for a seed); the arithmetic only where used.
    kind = rng.random(n)
    small = rng.integers(0, 7, n)                               # 16..64 B
    small *= 8
    small += 16
    medium = rng.integers(0, 24, n)                             # 72..256 B
    medium *= 8
    medium += 72
    log_size = rng.uniform(np.log(256), np.log(4096), n)        # arrays: 256 B .. 4 KiB
    sizes: npt.NDArray[np.int64] = np.where(kind < 0.80, small, medium)
    arrays = kind >= 0.95
    sizes[arrays] = (np.exp(log_size[arrays]).astype(np.int64) + 7) & ~7
    return sizes


def _sample_sizes(spec: HeapSpec, rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    if spec.sizes == "art":
        return _art_sizes(rng, n)
    return rng.choice(np.asarray(spec.sizes, dtype=np.int64), size=n)


def ref_counts(spec: HeapSpec, rng: np.random.Generator, sizes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Reference slots per object: ordinary objects ~ Poisson(refs_per_object); arrays (> 256 B) mostly primitive
    (a fifth hold up to 64 references); never more than the object has room for. Draws random(n), then
    poisson(n)."""
    n = sizes.size
    cap = max_refs(sizes)
    nrefs = np.where(sizes > 256, np.where(rng.random(n) < 0.2, np.minimum(cap, 64), 0),
                     np.minimum(cap, rng.poisson(spec.refs_per_object, n)))
    counts: npt.NDArray[np.int64] = np.minimum(nrefs, 0xFFFF).astype(np.int64)
    return counts


def _intended_live(spec: HeapSpec, rng: np.random.Generator, offset: npt.NDArray[np.int64],
                   used_end: int) -> npt.NDArray[np.bool_]:
    n = offset.size
    p = spec.live_fraction
    if spec.garbage == "uniform":
        return rng.random(n) < p
    if spec.garbage == "clustered":
        mean_region = 64 << 10
        count = used_end // mean_region * 2 + 2
        bounds = np.cumsum(rng.geometric(1.0 / mean_region, count))
        region_live = rng.random(bounds.size + 1) < p
        return region_live[np.searchsorted(bounds, offset, side="right")]
    # dense-prefix: a leading region almost fully live (only a few small objects die, so every page there stays
    # >= 95% live, as ART's black-dense prefix), the rest uniform so that the total stays at live_fraction.
    prefix = min(0.4, p * 0.6) * used_end
    in_prefix = offset < prefix
    rest_p = 0.0 if prefix >= used_end else max(0.0, min(1.0, (p * used_end - 0.99 * prefix) / (used_end - prefix)))
    small = np.diff(np.append(offset, used_end)) <= 64
    dead_in_prefix = small & (rng.random(n) < 0.03)
    return np.where(in_prefix, ~dead_in_prefix & (p > 0), rng.random(n) < rest_p)


class _GraphView:
    """The fields mark_reachable reads, for a reference graph that is not (yet) a Heap."""

    def __init__(self, num_refs: npt.NDArray[np.integer[Any]], refs: npt.NDArray[np.integer[Any]],
                 roots: npt.NDArray[np.integer[Any]]) -> None:
        self.num_refs, self.refs, self.roots = num_refs, refs, roots
        self.num_objects = int(num_refs.size)
        self.ref_start = np.zeros(self.num_objects + 1, dtype=np.int64)
        np.cumsum(num_refs, out=self.ref_start[1:])


class Heap:
    """A generated heap: the object table, the roots, and (on first use) the native moving space it lives in.

    Table arrays (numpy, one entry per object, sorted by offset): ``offset`` (u32), ``size`` (u32), ``num_refs``
    (u16), ``identity`` (u64), ``ref_start`` (u64, count + 1 entries), ``refs`` (i32 object indices, -1 = null);
    ``roots`` (i32 object indices).
    """

    def __init__(self, heap_size: int, offset: npt.ArrayLike, size: npt.ArrayLike, num_refs: npt.ArrayLike,
                 identity: npt.ArrayLike, refs: npt.ArrayLike, roots: npt.ArrayLike, spec: Optional[HeapSpec] = None,
                 origin: Optional[Dict[str, Any]] = None) -> None:
        self.heap_size = int(heap_size)
        self.offset = np.ascontiguousarray(offset, dtype=np.uint32)
        self.size = np.ascontiguousarray(size, dtype=np.uint32)
        self.num_refs = np.ascontiguousarray(num_refs, dtype=np.uint16)
        self.identity = np.ascontiguousarray(identity, dtype=np.uint64)
        self.refs = np.ascontiguousarray(refs, dtype=np.int32)
        self.roots = np.ascontiguousarray(roots, dtype=np.int32)
        self.spec = spec
        self.origin = origin  # where a heap read from a file came from: {"description": json text, "seed": int}
        self.ref_start = np.zeros(self.offset.size + 1, dtype=np.uint64)
        np.cumsum(self.num_refs, dtype=np.uint64, out=self.ref_start[1:])
        # Validated natively (bounds, order, alignment, reference targets) before anything touches memory.
        self._table = _native.ObjectTable(self.heap_size, self.offset, self.size, self.num_refs, self.identity,
                                          self.refs, self.roots)
        ends = self.offset.astype(np.int64) + self.size
        self.used_end = int(ends[-1]) if ends.size else 0
        self.tiled = bool(ends.size == 0 or (self.offset[0] == 0 and np.array_equal(self.offset[1:], ends[:-1])))
        self._space: Optional[_native.HeapSpace] = None
        self._pristine_digest: Optional[Tuple[int, int, int]] = None
        self.keep_pristine_image = True  # reset() copies a kept image back instead of materializing (one more heap)
        self.state = "unmaterialized"
        # Generational heaps (compactor.generations): the generations' ends and the card table; None: one generation.
        self.generations: Optional["Generations"] = None

    # -- a real heap ----------------------------------------------------------------------------------------
    @classmethod
    def from_hprof(cls, path: StrPath, *, heap: str = "app", scale: int = 1, live_fraction: Optional[float] = None,
                   seed: int = 0, page_size: Optional[int] = None) -> "Heap":
        """A heap built from an HPROF dump: one object per instance, object array and primitive array of ``heap``
        ("app", "zygote", "image", "all"; a JVM dump has one heap), with its real size (ART-like, see
        compactor.hprof; raised to what the emulated layout needs for its reference slots) and its real references,
        laid out in the order of their IDs (on Android the ID is the address: the real interleaving is kept; the
        gaps between objects are not). Roots: the dump's GC roots, the class statics, and objects referenced from
        the other heaps — references *to* those heaps are left out: those objects never move.

        ``scale=N`` places N copies one after another (references stay inside their copy). Liveness is real
        reachability; ``live_fraction=f`` drops a seeded subset of roots until about f of the bytes stay reachable,
        so whole subgraphs die. Raises compactor.HprofError for a malformed dump, ValueError for bad arguments."""
        from . import hprof
        from .marking import mark_reachable
        from .uffd import PAGE_SIZE

        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        if live_fraction is not None and not 0.0 < live_fraction <= 1.0:
            raise ValueError(f"live_fraction must lie in (0, 1], got {live_fraction}")
        g = hprof.read_hprof(path, heap)
        n = g.count
        nrefs = np.diff(g.ref_start)
        dropped_slots = int(np.maximum(nrefs - 0xFFFF, 0).sum())
        keep = np.minimum(nrefs, 0xFFFF)
        pos = np.repeat(g.ref_start[:-1] - np.cumsum(keep) + keep, keep) + np.arange(int(keep.sum()), dtype=np.int64)
        refs1 = g.refs[pos]
        sizes1 = np.maximum(g.size, payload_offset(keep.astype(np.int64)))  # room for the emulated slots
        copy_bytes = int(sizes1.sum())
        if copy_bytes * scale > MAX_HEAP_SIZE:
            raise ValueError(f"{scale} copies of this {copy_bytes}-byte heap exceed the 32-bit reference limit "
                             f"({MAX_HEAP_SIZE} bytes): use a smaller scale")
        ps = page_size or PAGE_SIZE
        sizes = np.tile(sizes1, scale)
        nrefs_all = np.tile(keep, scale)
        shift = (np.arange(scale, dtype=np.int64) * n).repeat(refs1.size)
        refs = np.where(np.tile(refs1, scale) >= 0, np.tile(refs1, scale) + shift, -1)
        ends = np.cumsum(sizes)
        offset = ends - sizes
        used_end = int(ends[-1]) if ends.size else 0
        heap_size = max(ps, -(-used_end // ps) * ps)
        roots1 = g.roots
        if live_fraction is not None and roots1.size:
            # Searched on one copy (every copy keeps the same roots): the shortest prefix of the shuffled roots
            # that keeps at least live_fraction of the reachable bytes.
            order = np.random.default_rng(seed).permutation(roots1.size)

            def live_bytes(k: int) -> int:
                return int(sizes1[mark_reachable(_GraphView(keep, refs1, roots1[order[:k]]))].sum())

            target = live_fraction * live_bytes(roots1.size)
            lo, hi = 0, roots1.size
            while lo < hi:
                mid = (lo + hi) // 2
                if live_bytes(mid) >= target:
                    hi = mid
                else:
                    lo = mid + 1
            roots1 = np.sort(roots1[order[:lo]])
        roots = np.tile(roots1, scale) + (np.arange(scale, dtype=np.int64) * n).repeat(roots1.size)
        tag = (seed * 0x9E3779B1 + 0x48505246) & 0xFFFFFFFF or 1
        identity = identity_of(np.arange(sizes.size, dtype=np.uint64), tag)
        h = cls(heap_size, offset, sizes, nrefs_all, identity, refs.astype(np.int32), roots.astype(np.int32),
                origin={"hprof": os.fspath(path), "heap": g.chosen, "scale": scale, "live_fraction": live_fraction,
                        "seed": seed, "dropped_reference_slots": dropped_slots * scale, **hprof.describe(g)})
        return h

    # -- generation ---------------------------------------------------------------------------------------
    @classmethod
    def generate(cls, spec: HeapSpec, page_size: Optional[int] = None) -> "Heap":
        """Generates the heap described by ``spec`` (deterministic from ``spec.seed``). Maps no heap yet (the
        first reset does); raises compactor.InsufficientMemory when the object table itself would not fit."""
        from .uffd import PAGE_SIZE

        ps = page_size or PAGE_SIZE
        heap_size = -(-spec.size // ps) * ps
        rng = np.random.default_rng(spec.seed)
        mean = 126.0 if spec.sizes == "art" else float(np.mean(np.asarray(spec.sizes, dtype=np.float64)))
        memory.check(memory.table_need(int(heap_size / mean)),  # refused before the arrays are allocated
                     f"generating the object table of a {heap_size // memory.MiB} MiB heap")
        if spec.old_fraction > 0:
            from . import generations

            return generations.generate(spec, ps)
        n_est = int(heap_size / mean * 1.2) + 64
        sizes = _sample_sizes(spec, rng, n_est)
        ends = np.cumsum(sizes)
        while ends[-1] < heap_size:  # rare: draw more
            more = _sample_sizes(spec, rng, n_est // 4 + 64)
            sizes = np.concatenate([sizes, more])
            ends = np.cumsum(sizes)
        n = int(np.searchsorted(ends, heap_size, side="right"))
        sizes = sizes[:n]
        ends = ends[:n]
        offset = ends - sizes
        used_end = int(ends[-1]) if n else 0

        nrefs = ref_counts(spec, rng, sizes)

        live = _intended_live(spec, rng, offset, used_end)
        live_idx = np.flatnonzero(live)
        # Reachability: holders (live, >= 1 slot) first, then the others, in random order. The first R of that order
        # are roots; child j hangs off slot j of the holder slot sequence, whose owner always comes earlier.
        holders = live_idx[nrefs[live_idx] > 0]
        others = live_idx[nrefs[live_idx] == 0]
        order = np.concatenate([rng.permutation(holders), rng.permutation(others)])
        total_slots = int(nrefs[holders].sum())
        n_live = order.size
        n_roots = min(n_live, max(spec.roots, n_live - total_slots)) if n_live else 0
        refs_total = int(nrefs.sum())
        ref_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(nrefs, out=ref_start[1:])
        # Default targets: garbage points anywhere; live objects point at random live objects; 10% null.
        refs = rng.integers(0, max(n, 1), refs_total, dtype=np.int64)
        if n_live:
            owner_live = np.repeat(live, nrefs)  # per slot: whether its owner is live
            refs[owner_live] = live_idx[rng.integers(0, n_live, int(owner_live.sum()))]
        refs[rng.random(refs_total) < 0.1] = -1
        # Tree edges: slots enumerated over holders in `order`, children = order[n_roots:].
        children = order[n_roots:]
        if children.size:
            hold_in_order = order[: holders.size]
            counts = nrefs[hold_in_order]
            slot_pos = (np.repeat(ref_start[hold_in_order] - np.cumsum(counts) + counts, counts)
                        + np.arange(int(counts.sum()), dtype=np.int64))
            refs[slot_pos[: children.size]] = children
        roots = rng.permutation(order[:n_roots]) if n_roots else np.zeros(0, dtype=np.int64)
        if roots.size < spec.roots and n_live:  # extra roots onto random live objects, as stacks hold duplicates
            roots = np.concatenate([roots, live_idx[rng.integers(0, n_live, spec.roots - roots.size)]])
        elif roots.size < spec.roots:
            roots = np.concatenate([roots, np.full(spec.roots - roots.size, -1)])
        tag = (spec.seed * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF or 1
        identity = identity_of(np.arange(n, dtype=np.uint64), tag)
        return cls(heap_size, offset, sizes, nrefs, identity, refs, roots, spec=spec)

    # -- the native moving space --------------------------------------------------------------------------
    @property
    def num_objects(self) -> int:
        """How many objects the heap holds, live or dead."""
        return int(self.offset.size)

    @property
    def space(self) -> "_native.HeapSpace":
        """The native moving space, materialized on first use."""
        if self._space is None:
            self.reset()
        assert self._space is not None
        return self._space

    def materialization_need(self) -> "memory.Need":
        """What the next reset maps: the moving space if not yet mapped, the pristine image if it is to be kept
        and is not yet (see compactor.memory.collection_need)."""
        parts = memory.collection_need(self.heap_size, space_mapped=self.space_mapped, image_kept=self.image_kept,
                                       keep_image=self.keep_pristine_image, concurrent=False).parts[:-1]
        return memory.Need(sum(p[1] for p in parts), sum(p[2] for p in parts), parts)

    @property
    def space_mapped(self) -> bool:
        """Whether the native moving space is mapped."""
        return self._space is not None

    @property
    def image_kept(self) -> bool:
        """Whether a pristine image is kept (resets copy it back)."""
        return self._space is not None and bool(self._space.has_pristine_image)

    @property
    def native_table(self) -> "_native.ObjectTable":
        return self._table

    def reset(self) -> None:
        """Restores the pristine generated state. The first reset materializes the table into the space object by
        object (one range of objects per CPU, up to 4, for large tables) and, when ``keep_pristine_image`` is true
        (the default), keeps a copy of those bytes; every later reset copies that image back at memory speed (the
        space populated in one call per slice, a slice per CPU from 64 MiB on). The image costs one more
        heap of memory: set ``keep_pristine_image = False`` (or call ``drop_pristine_image()``) to re-materialize
        each time instead. Raises compactor.InsufficientMemory, before mapping anything, when the space or the
        image would not fit under this process's memory limits (compactor.memory)."""
        need = self.materialization_need()
        if need.memory or need.address_space:  # refused before anything is mapped, naming the binding limit
            memory.check(need, f"materializing a {self.heap_size // memory.MiB} MiB heap")
        if self._space is None:
            self._space = _native.HeapSpace(self.heap_size)
        if self._space.has_pristine_image and self.keep_pristine_image:
            self._space.restore()
        else:
            self._space.reset(self._table, keep_image=self.keep_pristine_image)
        self.state = "pristine"

    def drop_pristine_image(self) -> None:
        """Gives the pristine image's memory back; later resets materialize object by object."""
        self.keep_pristine_image = False
        if self._space is not None:
            self._space.drop_pristine_image()

    def pristine_digest(self) -> Tuple[int, int, int]:
        """(digest, reachable objects, reachable bytes) of the pristine heap, by the native verifier's traversal."""
        if self._pristine_digest is None:
            if self.state != "pristine":
                self.reset()
            a, b, c = self.space.digest()
            self._pristine_digest = (a, b, c)
        return self._pristine_digest

    def describe(self) -> Dict[str, Any]:
        if self.origin and self.origin.get("description"):  # a file without one describes its heap anew
            described: Dict[str, Any] = json.loads(self.origin["description"])
            return described
        d: Dict[str, Any] = {"heap_bytes": self.heap_size, "objects": self.num_objects, "used_bytes": self.used_end,
             "roots": int(self.roots.size), "references": int(self.refs.size)}
        if self.spec is not None:
            d["spec"] = self.spec.to_dict()
        if self.origin and "hprof" in self.origin:
            d["hprof"] = dict(self.origin)
        return d
