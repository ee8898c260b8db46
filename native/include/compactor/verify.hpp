// Heap verification, independent of the planner: a digest of the graph reachable from the roots (per object its
// identity, size, payload and the identities of its referents), computed by a plain traversal of the heap image,
// plus structural checks of a compacted heap. Shares no code with planning or compaction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compactor/heap_image.hpp"

namespace compactor {

struct GraphDigest {
    uint64_t digest = 0;
    uint64_t objects = 0;  // reachable objects
    uint64_t bytes = 0;    // their total size
};

// One logged mutator write: payload word `index` of the object with `identity` changed from old_value to new_value.
struct PayloadWrite {
    uint64_t identity;
    uint64_t index;
    uint64_t old_value;
    uint64_t new_value;
};
static_assert(sizeof(PayloadWrite) == 4 * sizeof(uint64_t), "the binding hands writes to numpy as rows of 4 words");

// The additive payload term of the digest; a write changes the digest by term(new) - term(old).
uint64_t payload_term(uint64_t identity, uint64_t index, uint64_t value);

// How graph_digest traverses: Auto, the fast two-pass digest (multi-threaded on large heaps), or the precise
// single-threaded traversal when it finds an anomaly (it names it); Fast alone (an anomaly throws without a
// name: tests check that the fast path answered); Precise alone (the reference the fast one is tested against).
enum class DigestMethod : uint8_t { Auto, Fast, Precise };

// Traverses from the roots; throws HeapCorruption when a reference is not the start of a valid object.
GraphDigest graph_digest(const uint8_t* heap, uint64_t heap_size, const uint32_t* roots, uint64_t num_roots,
                         DigestMethod method = DigestMethod::Auto);

// The digest expected after the writes were applied to a heap whose digest was `before`.
uint64_t digest_after_writes(uint64_t before, const PayloadWrite* writes, uint64_t n);

struct VerifyReport {
    bool verified = false;
    GraphDigest after;
    uint64_t parsed_objects = 0;  // objects and fillers parsed below post_compact_end
    uint64_t fillers = 0;
    uint64_t new_objects = 0;     // objects mutators allocated above it, each checked
};

// Per mutator, the offsets of the objects it allocated during the phase, in allocation order.
using NewObjectLogs = std::vector<std::vector<uint32_t>>;

// Checks a compacted heap: [0, end) parses as a sequence of objects and fillers ending exactly at `end`; every
// reachable reference is the start of an object below `end`; each object in `new_objects` (allocated by mutators
// above `end`) holds exactly the header, identity, references and payload its allocation wrote; every other byte
// above `end` is unused (zero, or pages not resident); the graph digest equals `expected_digest`. Throws
// HeapCorruption naming the first problem (for a new object: its identity, mutator and allocation number).
VerifyReport verify_compacted(const uint8_t* heap, uint64_t heap_size, uint64_t post_compact_end, const uint32_t* roots,
                              uint64_t num_roots, uint64_t expected_digest, const NewObjectLogs* new_objects = nullptr);

// Names the first object (in traversal order from the roots) that differs between a reference heap and a
// compacted one; empty when none differs. Used to explain a digest mismatch.
std::string first_difference(const uint8_t* expected_heap, const uint32_t* expected_roots, const uint8_t* heap,
                             const uint32_t* roots, uint64_t num_roots, uint64_t heap_size);

}  // namespace compactor
