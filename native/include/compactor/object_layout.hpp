// The object layout of the moving space, ART-like: 8-byte aligned objects with an 8-byte header, an identity
// word, 32-bit compressed references (heap offsets) and payload words. Objects straddle pages freely.
// compactor/layout.py defines the same layout as a numpy dtype; tests check the two agree.
//
//   +0   uint32 size       total bytes, multiple of 8 (>= 16 for objects, >= 8 for fillers)
//   +4   uint16 num_refs   reference slots
//   +6   uint16 klass      kClassObject or kClassFiller
//   +8   uint64 identity   (objects only) unique, stable across collections
//   +16  uint32 refs[num_refs]   heap offsets of referents, kNullRef for null
//   +16+align8(4*num_refs)  uint64 payload words up to size
#pragma once

#include <cstddef>
#include <cstdint>

namespace compactor::layout {

constexpr uint32_t kObjectAlignment = 8;
constexpr uint32_t kChunkSize = 512;            // bytes per live-bytes chunk (ART's kOffsetChunkSize)
constexpr uint32_t kWordsPerChunk = kChunkSize / 8;  // one 64-bit live-words bitmap word per chunk
static_assert(kWordsPerChunk == 64, "a chunk's live words fit one uint64_t bitmap word");
constexpr uint32_t kNullRef = 0xFFFFFFFFu;
constexpr uint16_t kClassObject = 1;
constexpr uint16_t kClassFiller = 2;
constexpr uint32_t kHeaderSize = 8;
constexpr uint32_t kIdentityOffset = 8;
constexpr uint32_t kRefsOffset = 16;
constexpr uint32_t kMinObjectSize = 16;
constexpr uint32_t kMinFillerSize = 8;
constexpr uint64_t kMaxHeapSize = 0xFFFFFFF8ull;  // offsets and references are 32-bit

struct ObjectHeader {
    uint32_t size;
    uint16_t num_refs;
    uint16_t klass;
};
static_assert(sizeof(ObjectHeader) == kHeaderSize, "object header is one word");
static_assert(offsetof(ObjectHeader, num_refs) == 4 && offsetof(ObjectHeader, klass) == 6, "header field offsets");

inline uint64_t pack_header(uint32_t size, uint16_t num_refs, uint16_t klass) {
    return static_cast<uint64_t>(size) | (static_cast<uint64_t>(num_refs) << 32) | (static_cast<uint64_t>(klass) << 48);
}
inline ObjectHeader unpack_header(uint64_t w) {
    return ObjectHeader{static_cast<uint32_t>(w), static_cast<uint16_t>(w >> 32), static_cast<uint16_t>(w >> 48)};
}
inline constexpr uint32_t payload_offset(uint32_t num_refs) { return kRefsOffset + ((4u * num_refs + 7u) & ~7u); }
inline constexpr uint32_t min_object_size(uint32_t num_refs) { return payload_offset(num_refs); }

// The initial value of payload word `index` of the object with `identity` (splitmix64 of both).
inline uint64_t initial_payload_word(uint64_t identity, uint64_t index) {
    uint64_t z = identity * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Objects mutators allocate during a collection. The identity is kNewObjectTag | mutator << 40 | allocation
// number; its shape (reference slots, payload words) and every value follow from it — payload word i is
// initial_payload_word(identity, i), reference slot k points at the root new_object_root(identity, k) — so the
// verifier needs only each object's offset to check it byte for byte.
constexpr uint64_t kNewObjectTag = 1ull << 63;
constexpr uint32_t kNewObjectMaxRefs = 2, kNewObjectMaxPayloadWords = 24;

inline uint64_t new_object_identity(unsigned mutator, uint64_t number) {
    return kNewObjectTag | (static_cast<uint64_t>(mutator) << 40) | (number & ((1ull << 40) - 1));
}
inline uint16_t new_object_num_refs(uint64_t identity) {
    return static_cast<uint16_t>(initial_payload_word(identity, ~0ull) % (kNewObjectMaxRefs + 1));
}
inline uint32_t new_object_size(uint64_t identity) {
    const uint64_t words = 1 + initial_payload_word(identity, ~1ull) % kNewObjectMaxPayloadWords;
    return payload_offset(new_object_num_refs(identity)) + static_cast<uint32_t>(8 * words);
}
constexpr uint32_t kNewObjectMaxSize = payload_offset(kNewObjectMaxRefs) + 8 * kNewObjectMaxPayloadWords;
// The index of the root whose object reference slot `slot` holds (of `num_roots` roots, > 0).
inline uint64_t new_object_root(uint64_t identity, uint32_t slot, uint64_t num_roots) {
    return initial_payload_word(identity, ~2ull - slot) % num_roots;
}

}  // namespace compactor::layout
