// The plan file's format, version 1: the one definition that the writer and the loader (native/core/plan_file.cpp)
// share, described for people in docs/plan-file.md. Little-endian like every host the core runs on (x86-64, arm64
// Android): the header and the section entries are the structs below, copied to and from the file byte for byte,
// so their layout is the file's and the static_asserts pin it to the documented offsets.
#pragma once

#include <cstddef>
#include <cstdint>

namespace compactor {
namespace plan_file {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "plan-file records are copied byte for byte: little-endian");

constexpr char kMagic[8] = {'C', 'M', 'P', 'C', 'T', 'P', 'L', 'N'};
constexpr uint32_t kVersion = 1;
// Every section starts at a multiple of this (zero bytes pad the gap before it): every array is naturally aligned
// within the file.
constexpr uint64_t kSectionAlignment = 8;
// The loader's bound on num_sections, checked before it reads the table (the writer writes kNumSections).
constexpr uint32_t kMaxSections = 64;

// At offset 0.
struct Header {
    char magic[8];
    uint32_t version;
    uint32_t header_size;       // sizeof(Header)
    uint64_t heap_size;         // bytes, a multiple of page_size
    uint64_t page_size;         // the page size the plan was made for
    uint64_t dense_prefix_pages;
    uint64_t slide_begin;
    uint64_t post_compact_end;
    uint64_t live_bytes;
    uint64_t expected_digest;   // graph digest of the pristine heap
    uint64_t seed;              // the generator's seed (0 when there was none)
    uint32_t num_sections;      // entries in the section table that follows the header
    uint32_t flags;             // 0
    uint64_t file_size;         // must equal the file's real size: a truncated file is refused before any section
};

// The section table: num_sections entries right after the header.
struct SectionEntry {
    uint32_t id;
    uint32_t element_size;  // bytes per element: must be the size kSections gives for the id
    uint64_t count;         // elements
    uint64_t offset;        // from the start of the file, a multiple of kSectionAlignment
};

static_assert(offsetof(Header, magic) == 0 && offsetof(Header, version) == 8 && offsetof(Header, header_size) == 12 &&
                  offsetof(Header, heap_size) == 16 && offsetof(Header, page_size) == 24 &&
                  offsetof(Header, dense_prefix_pages) == 32 && offsetof(Header, slide_begin) == 40 &&
                  offsetof(Header, post_compact_end) == 48 && offsetof(Header, live_bytes) == 56 &&
                  offsetof(Header, expected_digest) == 64 && offsetof(Header, seed) == 72 &&
                  offsetof(Header, num_sections) == 80 && offsetof(Header, flags) == 84 &&
                  offsetof(Header, file_size) == 88 && sizeof(Header) == 96,
              "the version-1 header of docs/plan-file.md");
static_assert(offsetof(SectionEntry, element_size) == 4 && offsetof(SectionEntry, count) == 8 &&
                  offsetof(SectionEntry, offset) == 16 && sizeof(SectionEntry) == 24,
              "the version-1 section entry of docs/plan-file.md");

// The fields of the two records by name, for tests that corrupt one field of a real file
// (compactor._native.plan_file_format).
struct RecordField {
    const char* name;
    size_t offset, size;
};
#define COMPACTOR_PLAN_FILE_FIELD(record, f) RecordField{#f, offsetof(record, f), sizeof(record::f)}
constexpr RecordField kHeaderFields[] = {
    COMPACTOR_PLAN_FILE_FIELD(Header, magic), COMPACTOR_PLAN_FILE_FIELD(Header, version),
    COMPACTOR_PLAN_FILE_FIELD(Header, header_size), COMPACTOR_PLAN_FILE_FIELD(Header, heap_size),
    COMPACTOR_PLAN_FILE_FIELD(Header, page_size), COMPACTOR_PLAN_FILE_FIELD(Header, dense_prefix_pages),
    COMPACTOR_PLAN_FILE_FIELD(Header, slide_begin), COMPACTOR_PLAN_FILE_FIELD(Header, post_compact_end),
    COMPACTOR_PLAN_FILE_FIELD(Header, live_bytes), COMPACTOR_PLAN_FILE_FIELD(Header, expected_digest),
    COMPACTOR_PLAN_FILE_FIELD(Header, seed), COMPACTOR_PLAN_FILE_FIELD(Header, num_sections),
    COMPACTOR_PLAN_FILE_FIELD(Header, flags), COMPACTOR_PLAN_FILE_FIELD(Header, file_size),
};
constexpr RecordField kSectionEntryFields[] = {
    COMPACTOR_PLAN_FILE_FIELD(SectionEntry, id), COMPACTOR_PLAN_FILE_FIELD(SectionEntry, element_size),
    COMPACTOR_PLAN_FILE_FIELD(SectionEntry, count), COMPACTOR_PLAN_FILE_FIELD(SectionEntry, offset),
};
#undef COMPACTOR_PLAN_FILE_FIELD

enum SectionId : uint32_t {
    kObjOffset = 1, kObjSize, kObjNumRefs, kObjIdentity, kRefs, kRoots, kLiveWords, kChunkOffset, kFirstObj,
    kFirstObjHeader, kPreCompactOffset, kDescription, kOldGenEnd
};

struct SectionKind {
    SectionId id;
    uint32_t element_size;
    const char* name;  // the array's name in Python (planning.Plan, heap.Heap) and in read_plan_file's dict
    const char* what;  // for error messages
    bool required;
};

// Every section, in the order the writer lays them out (ascending id; kSections[id - 1] describes id). A reader
// takes them in any order.
constexpr SectionKind kSections[] = {
    {kObjOffset, 4, "offset", "object offsets", true},
    {kObjSize, 4, "size", "object sizes", true},
    {kObjNumRefs, 2, "num_refs", "object reference counts", true},
    {kObjIdentity, 8, "identity", "object identities", true},
    {kRefs, 4, "refs", "references", true},
    {kRoots, 4, "roots", "roots", true},
    {kLiveWords, 8, "live_words", "live-words bitmap", true},
    {kChunkOffset, 4, "chunk_offset", "chunk offsets", true},
    {kFirstObj, 4, "first_obj", "first objects", true},
    {kFirstObjHeader, 8, "first_obj_header", "first-object headers", true},
    {kPreCompactOffset, 4, "pre_compact_offset", "pre-compact offsets", true},
    {kDescription, 1, "description", "description", false},
    // A young collection's plan only (one value: the old generation's end); a full collection's file has no entry
    // for it, so that its table is the twelve entries version 1 always had.
    {kOldGenEnd, 8, "old_gen_end", "old generation's end", false},
};
constexpr uint32_t kNumSections = sizeof(kSections) / sizeof(kSections[0]);

constexpr bool sections_are_indexed_by_id() {
    for (uint32_t i = 0; i < kNumSections; ++i)
        if (kSections[i].id != i + 1) return false;
    return true;
}
static_assert(sections_are_indexed_by_id(), "kSections[id - 1] describes section id");
static_assert(kNumSections <= kMaxSections, "the writer's table fits the reader's bound");
static_assert(kSections[kNumSections - 1].id == kOldGenEnd, "the writer leaves the last section out of full plans");

// Where the writer's first section starts: after the header and its table of `entries` section entries (every
// section but kOldGenEnd, and that one too in a young collection's plan).
constexpr uint64_t first_section_offset(uint32_t entries) { return sizeof(Header) + entries * sizeof(SectionEntry); }

constexpr uint64_t align_section(uint64_t offset) {
    return (offset + kSectionAlignment - 1) / kSectionAlignment * kSectionAlignment;
}

}  // namespace plan_file
}  // namespace compactor
