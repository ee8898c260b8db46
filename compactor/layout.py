"""The object layout of the moving space, as numpy sees it. Mirrors native/include/compactor/object_layout.hpp
(tests/test_stubs_and_layout.py checks that the two agree).

An object: ``size:u32 | num_refs:u16 | klass:u16 | identity:u64 | refs:u32[num_refs] (8-aligned) | payload:u64[]``.
A filler (dead space in the dense prefix after compaction) is just the 8-byte header with ``klass=CLASS_FILLER``.
References are heap offsets (32-bit, "compressed"); ``NULL_REF`` is null.
"""

from __future__ import annotations

from typing import Any, Union, overload

import numpy as np
import numpy.typing as npt

_Ints = npt.NDArray[np.integer[Any]]

CHUNK_SIZE = 512  # bytes per live-bytes chunk (ART's kOffsetChunkSize): one 64-bit bitmap word
NULL_REF = 0xFFFFFFFF
CLASS_OBJECT = 1
CLASS_FILLER = 2
HEADER_SIZE = 8
IDENTITY_OFFSET = 8
REFS_OFFSET = 16
MIN_OBJECT_SIZE = 16
MAX_HEAP_SIZE = 0xFFFFFFF8

# The fixed part of every object, as a structured dtype.
OBJECT_HEADER_DTYPE = np.dtype([("size", "<u4"), ("num_refs", "<u2"), ("klass", "<u2"), ("identity", "<u8")])


@overload
def payload_offset(num_refs: int) -> int: ...
@overload
def payload_offset(num_refs: _Ints) -> npt.NDArray[np.integer[Any]]: ...
def payload_offset(num_refs: Union[int, _Ints]) -> Union[int, npt.NDArray[np.integer[Any]]]:
    """Byte offset of the first payload word (works on ints and numpy arrays)."""
    return REFS_OFFSET + ((4 * num_refs + 7) & ~7)


@overload
def max_refs(size: int) -> int: ...
@overload
def max_refs(size: _Ints) -> npt.NDArray[np.integer[Any]]: ...
def max_refs(size: Union[int, _Ints]) -> Union[int, npt.NDArray[np.integer[Any]]]:
    """How many reference slots an object of ``size`` bytes can hold."""
    return (size - REFS_OFFSET) // 4


def pack_header(size: npt.ArrayLike, num_refs: npt.ArrayLike, klass: npt.ArrayLike = CLASS_OBJECT
                ) -> npt.NDArray[np.uint64]:
    """The 8-byte header word(s) as uint64 (works on arrays)."""
    # numpy's stubs type `|` and `<<` of uint64 arrays as Any: the annotation states what they are.
    header: npt.NDArray[np.uint64] = (np.asarray(size, dtype=np.uint64)
                                      | (np.asarray(num_refs, dtype=np.uint64) << np.uint64(32))
                                      | (np.asarray(klass, dtype=np.uint64) << np.uint64(48)))
    return header


def identity_of(index: npt.ArrayLike, tag: int) -> npt.NDArray[np.uint64]:
    """Object identities: the generator's tag in the high 32 bits, index + 1 in the low 32 bits."""
    ids: npt.NDArray[np.uint64] = np.asarray(index, dtype=np.uint64) + np.uint64(1)  # one array, then in place
    ids |= np.uint64(tag) << np.uint64(32)
    return ids


BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # set bits of each byte value


def popcount64(words: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Per-element population count of a uint64 array."""
    w = np.ascontiguousarray(words, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(w).astype(np.int64)
    counts: npt.NDArray[np.int64] = BYTE_POPCOUNT[w.view(np.uint8)].reshape(-1, 8).sum(axis=1, dtype=np.int64)
    return counts
