"""Writes small, valid HPROF dumps that hold every record and sub-record kind the parser knows (both versions,
4- and 8-byte identifiers), as seeds for the HPROF fuzzer: mutations of a few hundred bytes reach every path."""

import struct
import sys
from pathlib import Path


def dump(version: bytes, ids: int, android: bool) -> bytes:
    I = ">I" if ids == 4 else ">Q"  # noqa: E741
    i = lambda v: struct.pack(I, v)  # noqa: E731
    u4 = lambda v: struct.pack(">I", v)  # noqa: E731
    u2 = lambda v: struct.pack(">H", v)  # noqa: E731

    def record(tag, body):
        return bytes([tag]) + u4(0) + u4(len(body)) + body

    out = version + b"\0" + u4(ids) + struct.pack(">Q", 0)
    out += record(0x01, i(1) + b"java.lang.Object") + record(0x01, i(2) + b"Node") + record(0x01, i(3) + b"next")
    out += record(0x01, i(4) + b"app")
    out += record(0x02, u4(1) + i(100) + u4(0) + i(1)) + record(0x02, u4(2) + i(101) + u4(0) + i(2))
    out += record(0x05, u4(0) + u4(0) + u4(0))  # STACK_TRACE: skipped by its length
    sub = b""
    if android:
        sub += bytes([0xFE]) + u4(ord("A")) + i(4)
    sub += bytes([0x20]) + i(100) + u4(0) + i(0) + i(0) * 5 + u4(8) + u2(0) + u2(0) + u2(0)
    sub += (bytes([0x20]) + i(101) + u4(0) + i(100) + i(0) * 5 + u4(16) + u2(1) + u2(7) + bytes([10]) + u4(5)
            + u2(1) + i(3) + bytes([2]) + i(200) + u2(2) + i(3) + bytes([2]) + i(3) + bytes([10]))
    sub += bytes([0x21]) + i(200) + u4(0) + i(101) + u4(ids + 4) + i(201) + u4(7)
    sub += bytes([0x21]) + i(201) + u4(0) + i(101) + u4(ids + 4) + i(0) + u4(8)
    sub += bytes([0x22]) + i(202) + u4(0) + u4(2) + i(100) + i(200) + i(203)
    sub += bytes([0x23]) + i(203) + u4(0) + u4(3) + bytes([5]) + b"\0a\0b\0c"
    if android:
        sub += bytes([0xC3]) + i(204) + u4(0) + u4(9) + bytes([11])
    roots = [(0xFF, b""), (0x01, i(0)), (0x02, u4(1) + u4(2)), (0x03, u4(1) + u4(2)), (0x04, u4(1)), (0x05, b""),
             (0x06, u4(1)), (0x07, b""), (0x08, u4(1) + u4(2))]
    if android:
        roots += [(0x89, b""), (0x8A, b""), (0x8B, b""), (0x8C, b""), (0x8D, b""), (0x8E, u4(1) + u4(2)), (0x90, b"")]
    for tag, rest in roots:
        sub += bytes([tag]) + i(200) + rest
    out += record(0x1C, sub)
    out += record(0x2C, b"")  # HEAP_DUMP_END
    return out


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for version, ids, android in ((b"JAVA PROFILE 1.0.3", 4, True), (b"JAVA PROFILE 1.0.2", 4, False),
                                  (b"JAVA PROFILE 1.0.3", 8, True), (b"JAVA PROFILE 1.0.2", 8, False)):
        (folder / f"seed-{version[-5:].decode()}-{ids}.hprof").write_bytes(dump(version, ids, android))
