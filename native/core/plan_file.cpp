// The plan-file loader and writer, both over the one format definition (compactor/plan_file_format.hpp).
#include "compactor/plan_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

// A file written under a temporary name beside `path` and renamed over `path` by commit(); removed by the
// destructor if never committed, so that a failed or interrupted save leaves nothing behind.
class AtomicFile {
public:
    explicit AtomicFile(const std::string& path) : path_(path) {
        const size_t slash = path.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
        std::string name = dir + "/.plan-XXXXXX";
        fd_ = mkostemp(&name[0], O_CLOEXEC);
        if (fd_ < 0) fail("creating a temporary file in '" + dir + "'");
        tmp_ = name;
    }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!tmp_.empty()) ::unlink(tmp_.c_str());
    }

    void write(const void* p, uint64_t n) {
        const char* c = static_cast<const char*>(p);
        while (n) {
            const ssize_t w = ::write(fd_, c, n);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) fail("writing '" + tmp_ + "'");
            c += w;
            n -= static_cast<uint64_t>(w);
        }
    }

    // Durable before it is visible: fsync, then the rename that makes it the file at `path`.
    void commit() {
        if (::fsync(fd_) != 0) fail("fsync('" + tmp_ + "')");
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) fail("closing '" + tmp_ + "'");
        if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("renaming '" + tmp_ + "' to '" + path_ + "'");
        tmp_.clear();
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        const int err = errno;
        throw SysError(err, sys_message("saving plan file '" + path_ + "': " + what, err));
    }

    std::string path_, tmp_;
    int fd_ = -1;
};

// What the writer puts in each section: a pointer and an element count, checked against the format at compile time.
class Payloads {
public:
    template <SectionId id, typename T>
    void set(const T* data, uint64_t count) {
        static_assert(sizeof(T) == kSections[id - 1].element_size, "the array's element is the section's");
        data_[id - 1] = data;
        count_[id - 1] = count;
    }
    const void* data(uint32_t i) const { return data_[i]; }
    uint64_t count(uint32_t i) const { return count_[i]; }

private:
    const void* data_[kNumSections] = {};
    uint64_t count_[kNumSections] = {};
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
    std::vector<uint64_t> old_gen_end;
    sections.load<kOldGenEnd>(old_gen_end);
    if (old_gen_end.size() > 1) malformed("old generation's end: " + s(old_gen_end.size()) + " values, not one");
    p.old_gen_end = old_gen_end.empty() ? 0 : old_gen_end[0];
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

void save_plan_file(const std::string& path, const PlanView& plan, const ObjectTableView& table,
                    const int32_t* root_objects, uint64_t num_roots, uint64_t expected_digest, uint64_t seed,
                    const std::string& description) {
    validate_plan(plan);
    validate_object_table(table, plan.heap_size);
    root_offsets(table, root_objects, num_roots);  // throws for a root naming no object

    // The file keeps the plan's two per-chunk arrays apart; the core holds them interleaved (ChunkEntry).
    std::vector<uint64_t> live_words(plan.num_chunks);
    std::vector<uint32_t> chunk_offset(plan.num_chunks);
    for (uint64_t c = 0; c < plan.num_chunks; ++c) {
        live_words[c] = plan.chunks[c].live_words;
        chunk_offset[c] = plan.chunks[c].offset;
    }
    Payloads payload;
    payload.set<kObjOffset>(table.offset, table.count);
    payload.set<kObjSize>(table.size, table.count);
    payload.set<kObjNumRefs>(table.num_refs, table.count);
    payload.set<kObjIdentity>(table.identity, table.count);
    payload.set<kRefs>(table.refs, table.num_refs_total);
    payload.set<kRoots>(root_objects, num_roots);
    payload.set<kLiveWords>(live_words.data(), live_words.size());
    payload.set<kChunkOffset>(chunk_offset.data(), chunk_offset.size());
    payload.set<kFirstObj>(plan.first_obj, plan.num_to_pages);
    payload.set<kFirstObjHeader>(plan.first_obj_header, plan.num_to_pages);
    payload.set<kPreCompactOffset>(plan.pre_compact_offset, plan.num_to_pages);
    payload.set<kDescription>(description.data(), description.size());
    payload.set<kOldGenEnd>(&plan.old_gen_end, 1);
    // kOldGenEnd is the last section: a full collection's plan leaves it out of the table.
    const uint32_t written = plan.old_gen_end ? kNumSections : kNumSections - 1;

    SectionEntry entries[kNumSections];
    uint64_t end = first_section_offset(written);
    for (uint32_t i = 0; i < written; ++i) {
        const uint64_t offset = align_section(end);
        entries[i] = SectionEntry{kSections[i].id, kSections[i].element_size, payload.count(i), offset};
        end = offset + payload.count(i) * kSections[i].element_size;
    }
    Header h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.version = kVersion;
    h.header_size = sizeof(Header);
    h.heap_size = plan.heap_size;
    h.page_size = plan.page_size;
    h.dense_prefix_pages = plan.dense_prefix_pages;
    h.slide_begin = plan.slide_begin;
    h.post_compact_end = plan.post_compact_end;
    h.live_bytes = plan.live_bytes;
    h.expected_digest = expected_digest;
    h.seed = seed;
    h.num_sections = written;
    h.flags = 0;
    h.file_size = end;

    AtomicFile f(path);
    f.write(&h, sizeof h);
    f.write(entries, written * sizeof(SectionEntry));
    static constexpr char kPadding[kSectionAlignment] = {};
    uint64_t pos = first_section_offset(written);
    for (uint32_t i = 0; i < written; ++i) {
        const uint64_t bytes = entries[i].count * entries[i].element_size;
        f.write(kPadding, entries[i].offset - pos);
        if (bytes) f.write(payload.data(i), bytes);
        pos = entries[i].offset + bytes;
    }
    f.commit();
}

}  // namespace compactor
