// Plan file reader. The format (little-endian; documented in docs/plan-file.md) is written by compactor/planfile.py.
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "compactor/errors.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/object_layout.hpp"
#include "compactor/plan_checks.hpp"

namespace compactor {

namespace {

constexpr char kMagic[8] = {'C', 'M', 'P', 'C', 'T', 'P', 'L', 'N'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kHeaderSize = 96;
constexpr uint32_t kSectionEntry = 24;

enum Section : uint32_t {
    kObjOffset = 1, kObjSize, kObjNumRefs, kObjIdentity, kRefs, kRoots, kLiveWords, kChunkOffset, kFirstObj,
    kFirstObjHeader, kPreCompactOffset, kDescription, kNumSectionIds
};

const char* section_name(uint32_t id) {
    static const char* names[] = {"?", "object offsets", "object sizes", "object reference counts", "object identities",
                                  "references", "roots", "live-words bitmap", "chunk offsets", "first objects",
                                  "first-object headers", "pre-compact offsets", "description"};
    return id < kNumSectionIds ? names[id] : "?";
}

uint32_t elem_size(uint32_t id) {
    switch (id) {
        case kObjNumRefs: return 2;
        case kObjIdentity: case kLiveWords: case kFirstObjHeader: return 8;
        case kDescription: return 1;
        default: return 4;
    }
}

template <typename T>
T rd(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

}  // namespace

PlanBundle parse_plan_file(const uint8_t* data, size_t size) {
    auto fail = [](const std::string& what) { throw PlanError("malformed plan file: " + what); };
    auto s = [](uint64_t v) { return std::to_string(v); };
    if (size < kHeaderSize) fail("truncated: " + s(size) + " bytes, the header alone is " + s(kHeaderSize));
    if (std::memcmp(data, kMagic, 8) != 0) fail("bad magic (not a compactor plan file)");
    const uint32_t version = rd<uint32_t>(data + 8);
    if (version != kVersion) fail("version " + s(version) + " is not supported (this build reads version " + s(kVersion) + ")");
    if (rd<uint32_t>(data + 12) != kHeaderSize) fail("header size field is " + s(rd<uint32_t>(data + 12)));
    PlanBundle b;
    PlanData& p = b.plan;
    p.heap_size = rd<uint64_t>(data + 16);
    p.page_size = rd<uint64_t>(data + 24);
    p.dense_prefix_pages = rd<uint64_t>(data + 32);
    p.slide_begin = rd<uint64_t>(data + 40);
    p.post_compact_end = rd<uint64_t>(data + 48);
    p.live_bytes = rd<uint64_t>(data + 56);
    b.expected_digest = rd<uint64_t>(data + 64);
    b.seed = rd<uint64_t>(data + 72);
    const uint32_t nsec = rd<uint32_t>(data + 80);
    const uint64_t file_size = rd<uint64_t>(data + 88);
    if (file_size != size) fail("truncated or padded: header says " + s(file_size) + " bytes, file has " + s(size));
    if (nsec > 64) fail("section count " + s(nsec) + " out of range");
    if (kHeaderSize + static_cast<uint64_t>(nsec) * kSectionEntry > size) fail("truncated section table");
    if (p.page_size < 4096 || (p.page_size & (p.page_size - 1)) || p.page_size > (1u << 20))
        fail("page size " + s(p.page_size) + " out of range");
    if (p.heap_size == 0 || p.heap_size % p.page_size || p.heap_size > layout::kMaxHeapSize)
        fail("heap size " + s(p.heap_size) + " out of range");

    struct Sec { uint64_t count, offset; };
    std::map<uint32_t, Sec> secs;
    for (uint32_t i = 0; i < nsec; ++i) {
        const uint8_t* e = data + kHeaderSize + i * kSectionEntry;
        const uint32_t id = rd<uint32_t>(e), es = rd<uint32_t>(e + 4);
        const uint64_t count = rd<uint64_t>(e + 8), off = rd<uint64_t>(e + 16);
        if (id == 0 || id >= kNumSectionIds) fail("unknown section id " + s(id));
        if (es != elem_size(id)) fail(std::string(section_name(id)) + ": element size " + s(es));
        if (secs.count(id)) fail(std::string(section_name(id)) + " appears twice");
        if (off % 8 || off > size || count > (size - off) / es)
            fail(std::string(section_name(id)) + " lies outside the file (offset " + s(off) + ", " + s(count) + " elements)");
        secs[id] = {count, off};
    }
    for (uint32_t id = 1; id < kDescription; ++id)
        if (!secs.count(id)) fail(std::string("missing section: ") + section_name(id));

    auto load = [&](uint32_t id, auto& vec) {
        const Sec& sc = secs[id];
        vec.resize(sc.count);
        if (sc.count) std::memcpy(vec.data(), data + sc.offset, sc.count * elem_size(id));
    };
    ObjectTable& t = b.table;
    load(kObjOffset, t.offset);
    load(kObjSize, t.size);
    load(kObjNumRefs, t.num_refs);
    load(kObjIdentity, t.identity);
    load(kRefs, t.refs);
    load(kRoots, b.root_objects);
    load(kLiveWords, p.live_words);
    load(kChunkOffset, p.chunk_offset);
    load(kFirstObj, p.first_obj);
    load(kFirstObjHeader, p.first_obj_header);
    load(kPreCompactOffset, p.pre_compact_offset);
    if (secs.count(kDescription)) {
        const Sec& sc = secs[kDescription];
        b.description.assign(reinterpret_cast<const char*>(data + sc.offset), sc.count);
    }
    assemble_plan(p);
    assemble_object_table(t, b.root_objects, p.heap_size);
    return b;
}

PlanBundle load_plan_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw PlanError("cannot open plan file '" + path + "'");
    const std::streamsize n = f.tellg();
    if (n < 0) throw PlanError("cannot read plan file '" + path + "'");
    std::vector<uint8_t> buf(static_cast<size_t>(n));
    f.seekg(0);
    if (n && !f.read(reinterpret_cast<char*>(buf.data()), n)) throw PlanError("cannot read plan file '" + path + "'");
    try {
        return parse_plan_file(buf.data(), buf.size());
    } catch (const PlanError& e) {
        throw PlanError(path + ": " + e.what());
    }
}

}  // namespace compactor
