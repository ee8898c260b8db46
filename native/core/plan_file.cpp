// The plan-file loader, over the one format definition (compactor/plan_file_format.hpp).
#include "compactor/plan_file.hpp"

#include <cstring>
#include <fstream>
#include <string>

#include "compactor/errors.hpp"
#include "compactor/plan_checks.hpp"
#include "compactor/plan_file_format.hpp"

namespace compactor {

using namespace plan_file;

namespace {

std::string s(uint64_t v) { return std::to_string(v); }

[[noreturn]] void malformed(const std::string& what) { throw PlanError("malformed plan file: " + what); }

const SectionKind& kind(uint32_t id) { return kSections[id - 1]; }

// The sections a file lists, by id, once their entries have been checked against the file's bounds.
class SectionTable {
public:
    SectionTable(const uint8_t* data, size_t size, uint32_t num_sections) : data_(data) {
        for (uint32_t i = 0; i < num_sections; ++i) {
            SectionEntry e;
            std::memcpy(&e, data + sizeof(Header) + i * sizeof(SectionEntry), sizeof e);
            if (e.id == 0 || e.id > kNumSections) malformed("unknown section id " + s(e.id));
            const SectionKind& k = kind(e.id);
            if (e.element_size != k.element_size) malformed(std::string(k.what) + ": element size " + s(e.element_size));
            if (present_[e.id - 1]) malformed(std::string(k.what) + " appears twice");
            if (e.offset % kSectionAlignment || e.offset > size || e.count > (size - e.offset) / k.element_size)
                malformed(std::string(k.what) + " lies outside the file (offset " + s(e.offset) + ", " + s(e.count) +
                          " elements)");
            entries_[e.id - 1] = e;
            present_[e.id - 1] = true;
        }
        for (const SectionKind& k : kSections)
            if (k.required && !present_[k.id - 1]) malformed(std::string("missing section: ") + k.what);
    }

    // Copies section `id` into `out` (left empty when an optional section is absent). The element type is checked
    // against the format at compile time.
    template <SectionId id, typename Container>
    void load(Container& out) const {
        static_assert(sizeof(typename Container::value_type) == kSections[id - 1].element_size,
                      "the container's element is the section's");
        if (!present_[id - 1]) return;
        const SectionEntry& e = entries_[id - 1];
        out.resize(e.count);
        if (e.count) std::memcpy(&out[0], data_ + e.offset, e.count * e.element_size);
    }

private:
    const uint8_t* data_;
    SectionEntry entries_[kNumSections] = {};
    bool present_[kNumSections] = {};
};

}  // namespace

PlanBundle parse_plan_file(const uint8_t* data, size_t size) {
    if (size < sizeof(Header)) malformed("truncated: " + s(size) + " bytes, the header alone is " + s(sizeof(Header)));
    Header h;
    std::memcpy(&h, data, sizeof h);
    if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) malformed("bad magic (not a compactor plan file)");
    if (h.version != kVersion)
        malformed("version " + s(h.version) + " is not supported (this build reads version " + s(kVersion) + ")");
    if (h.header_size != sizeof(Header)) malformed("header size field is " + s(h.header_size));
    if (h.file_size != size) malformed("truncated or padded: header says " + s(h.file_size) + " bytes, file has " + s(size));
    if (h.num_sections > kMaxSections) malformed("section count " + s(h.num_sections) + " out of range");
    if (sizeof(Header) + static_cast<uint64_t>(h.num_sections) * sizeof(SectionEntry) > size)
        malformed("truncated section table");
    const SectionTable sections(data, size, h.num_sections);

    PlanBundle b;
    PlanData& p = b.plan;
    p.heap_size = h.heap_size;
    p.page_size = h.page_size;
    p.dense_prefix_pages = h.dense_prefix_pages;
    p.slide_begin = h.slide_begin;
    p.post_compact_end = h.post_compact_end;
    p.live_bytes = h.live_bytes;
    b.expected_digest = h.expected_digest;
    b.seed = h.seed;
    ObjectTable& t = b.table;
    sections.load<kObjOffset>(t.offset);
    sections.load<kObjSize>(t.size);
    sections.load<kObjNumRefs>(t.num_refs);
    sections.load<kObjIdentity>(t.identity);
    sections.load<kRefs>(t.refs);
    sections.load<kRoots>(b.root_objects);
    sections.load<kLiveWords>(p.live_words);
    sections.load<kChunkOffset>(p.chunk_offset);
    sections.load<kFirstObj>(p.first_obj);
    sections.load<kFirstObjHeader>(p.first_obj_header);
    sections.load<kPreCompactOffset>(p.pre_compact_offset);
    sections.load<kDescription>(b.description);
    // The plan first: it checks the header's page and heap sizes, which the object table is then checked against.
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
