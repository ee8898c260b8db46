// HPROF parser: records (STRING, LOAD_CLASS, HEAP_DUMP, HEAP_DUMP_SEGMENT; any other tag skipped by its length)
// and heap-dump sub-records (every GC root type, CLASS_DUMP, INSTANCE_DUMP, OBJ_ARRAY_DUMP, PRIMITIVE_ARRAY_DUMP,
// Android's HEAP_DUMP_INFO, roots 0x89-0x8E, UNREACHABLE 0x90 and PRIMITIVE_ARRAY_NODATA 0xC3). An unknown
// sub-record is an error: its length cannot be known.
#include "compactor/hprof.hpp"

#include <cstring>
#include <unordered_set>

namespace compactor {

uint32_t hprof_type_size(uint8_t type, uint32_t id_size) {
    switch (type) {
        case 2: return id_size;       // object
        case 4: case 8: return 1;     // boolean, byte
        case 5: case 9: return 2;     // char, short
        case 6: case 10: return 4;    // float, int
        case 7: case 11: return 8;    // double, long
        default: return 0;
    }
}

namespace {

const char* subrecord_name(uint8_t t) {
    switch (t) {
        case 0x01: return "ROOT_JNI_GLOBAL";
        case 0x02: return "ROOT_JNI_LOCAL";
        case 0x03: return "ROOT_JAVA_FRAME";
        case 0x04: return "ROOT_NATIVE_STACK";
        case 0x05: return "ROOT_STICKY_CLASS";
        case 0x06: return "ROOT_THREAD_BLOCK";
        case 0x07: return "ROOT_MONITOR_USED";
        case 0x08: return "ROOT_THREAD_OBJECT";
        case 0x20: return "CLASS_DUMP";
        case 0x21: return "INSTANCE_DUMP";
        case 0x22: return "OBJ_ARRAY_DUMP";
        case 0x23: return "PRIMITIVE_ARRAY_DUMP";
        case 0x89: return "ROOT_INTERNED_STRING";
        case 0x8A: return "ROOT_FINALIZING";
        case 0x8B: return "ROOT_DEBUGGER";
        case 0x8C: return "ROOT_REFERENCE_CLEANUP";
        case 0x8D: return "ROOT_VM_INTERNAL";
        case 0x8E: return "ROOT_JNI_MONITOR";
        case 0x90: return "ROOT_UNREACHABLE";
        case 0xC3: return "PRIMITIVE_ARRAY_NODATA_DUMP";
        case 0xFE: return "HEAP_DUMP_INFO";
        case 0xFF: return "ROOT_UNKNOWN";
        default: return "unknown sub-record";
    }
}

// Big-endian reads bounded by `end`; a read past it throws naming the record being parsed.
struct Reader {
    const uint8_t* base;
    uint64_t pos, end;
    uint32_t id_size;
    const char* record;
    uint64_t record_start;

    [[noreturn]] void fail(const std::string& why) const { throw HprofError(record_start, record, why); }
    void need(uint64_t n) const {
        if (n > end - pos) fail("truncated: needs " + std::to_string(n) + " more bytes, " + std::to_string(end - pos) + " remain");
    }
    uint64_t be(unsigned n) {
        need(n);
        uint64_t v = 0;
        for (unsigned i = 0; i < n; ++i) v = (v << 8) | base[pos + i];
        pos += n;
        return v;
    }
    uint8_t u1() { return static_cast<uint8_t>(be(1)); }
    uint32_t u2() { return static_cast<uint32_t>(be(2)); }
    uint32_t u4() { return static_cast<uint32_t>(be(4)); }
    uint64_t id() { return be(id_size); }
    void skip(uint64_t n) {
        need(n);
        pos += n;
    }
};

struct Pending {  // an instance or object array whose references are read once every class is known
    uint64_t data;  // file offset of the field values / elements
};

}  // namespace

HprofDump parse_hprof(const uint8_t* data, uint64_t size) {
    HprofDump d;
    // Header: NUL-terminated version, u4 identifier size, u8 timestamp.
    const void* nul = std::memchr(data, 0, size < 64 ? size : 64);
    if (!nul) throw HprofError(0, "header", "not an HPROF file (no version string)");
    d.version.assign(reinterpret_cast<const char*>(data), static_cast<const uint8_t*>(nul) - data);
    if (d.version != "JAVA PROFILE 1.0.2" && d.version != "JAVA PROFILE 1.0.3" && d.version != "JAVA PROFILE 1.0.1")
        throw HprofError(0, "header", "not an HPROF file (version '" + d.version.substr(0, 40) + "')");
    Reader r{data, d.version.size() + 1, size, 4, "header", 0};
    d.id_size = r.u4();
    if (d.id_size != 4 && d.id_size != 8) r.fail("identifier size " + std::to_string(d.id_size) + " (must be 4 or 8)");
    r.id_size = d.id_size;
    r.skip(8);
    std::vector<Pending> pending;  // parallel to obj_* for instances and object arrays (primitive: unused)
    uint32_t current_heap = 0;
    auto add_object = [&](uint64_t oid, uint64_t cls, HprofKind kind, uint64_t length, uint8_t elem, uint64_t at) {
        d.obj_id.push_back(oid);
        d.obj_class.push_back(cls);
        d.obj_kind.push_back(static_cast<uint8_t>(kind));
        d.obj_heap.push_back(current_heap);
        d.obj_length.push_back(length);
        d.obj_elem_type.push_back(elem);
        pending.push_back({at});
    };
    while (r.pos < size) {
        r.record = "record header";
        r.record_start = r.pos;
        r.end = size;
        const uint8_t tag = r.u1();
        r.skip(4);
        const uint64_t len = r.u4();
        r.need(len);
        const uint64_t body_end = r.pos + len;
        d.records += 1;
        Reader b{data, r.pos, body_end, d.id_size, "", r.record_start};
        switch (tag) {
            case 0x01: {  // STRING
                b.record = "STRING";
                const uint64_t sid = b.id();
                d.strings[sid].assign(reinterpret_cast<const char*>(data + b.pos), body_end - b.pos);
                break;
            }
            case 0x02: {  // LOAD_CLASS
                b.record = "LOAD_CLASS";
                b.skip(4);
                const uint64_t cid = b.id();
                b.skip(4);
                d.class_name[cid] = b.id();
                break;
            }
            case 0x0C:
            case 0x1C: {  // HEAP_DUMP, HEAP_DUMP_SEGMENT
                while (b.pos < body_end) {
                    b.record_start = b.pos;
                    b.record = "sub-record";
                    const uint8_t st = b.u1();
                    b.record = subrecord_name(st);
                    switch (st) {
                        case 0xFF: case 0x05: case 0x07: case 0x89: case 0x8A: case 0x8B: case 0x8C: case 0x8D:
                        case 0x90:
                            d.root_id.push_back(b.id());
                            d.root_type.push_back(st);
                            break;
                        case 0x01:
                            d.root_id.push_back(b.id());
                            d.root_type.push_back(st);
                            b.skip(d.id_size);
                            break;
                        case 0x04: case 0x06:
                            d.root_id.push_back(b.id());
                            d.root_type.push_back(st);
                            b.skip(4);
                            break;
                        case 0x02: case 0x03: case 0x08: case 0x8E:
                            d.root_id.push_back(b.id());
                            d.root_type.push_back(st);
                            b.skip(8);
                            break;
                        case 0xFE:
                            current_heap = b.u4();
                            d.heap_name[current_heap] = b.id();
                            break;
                        case 0x20: {  // CLASS_DUMP
                            HprofClass c;
                            c.id = b.id();
                            b.skip(4);
                            c.super_id = b.id();
                            b.skip(5ull * d.id_size);  // loader, signers, protection domain, 2 reserved
                            c.instance_size = b.u4();
                            c.heap = current_heap;
                            const uint32_t ncp = b.u2();
                            for (uint32_t i = 0; i < ncp; ++i) {
                                b.skip(2);
                                const uint8_t t = b.u1();
                                const uint32_t ts = hprof_type_size(t, d.id_size);
                                if (!ts) b.fail("unknown basic type " + std::to_string(t) + " in the constant pool");
                                b.skip(ts);
                            }
                            const uint32_t nstatic = b.u2();
                            for (uint32_t i = 0; i < nstatic; ++i) {
                                b.skip(d.id_size);
                                const uint8_t t = b.u1();
                                const uint32_t ts = hprof_type_size(t, d.id_size);
                                if (!ts) b.fail("unknown basic type " + std::to_string(t) + " of a static field");
                                if (t == 2) {
                                    const uint64_t v = b.id();
                                    if (v) c.static_refs.push_back(v);
                                } else {
                                    b.skip(ts);
                                }
                            }
                            const uint32_t nfields = b.u2();
                            b.need(static_cast<uint64_t>(nfields) * (d.id_size + 1));
                            c.field_types.reserve(nfields);
                            c.field_names.reserve(nfields);
                            for (uint32_t i = 0; i < nfields; ++i) {
                                c.field_names.push_back(b.id());
                                const uint8_t t = b.u1();
                                if (!hprof_type_size(t, d.id_size)) b.fail("unknown basic type " + std::to_string(t) + " of an instance field");
                                c.field_types.push_back(t);
                            }
                            d.classes.push_back(std::move(c));
                            break;
                        }
                        case 0x21: {  // INSTANCE_DUMP
                            const uint64_t oid = b.id();
                            b.skip(4);
                            const uint64_t cls = b.id();
                            const uint64_t n = b.u4();
                            b.need(n);
                            add_object(oid, cls, HprofKind::Instance, n, 0, b.pos);
                            b.skip(n);
                            break;
                        }
                        case 0x22: {  // OBJ_ARRAY_DUMP
                            const uint64_t oid = b.id();
                            b.skip(4);
                            const uint64_t n = b.u4();
                            const uint64_t cls = b.id();
                            b.need(n * d.id_size);
                            add_object(oid, cls, HprofKind::ObjectArray, n, 2, b.pos);
                            b.skip(n * d.id_size);
                            break;
                        }
                        case 0x23:
                        case 0xC3: {  // PRIMITIVE_ARRAY_DUMP, PRIMITIVE_ARRAY_NODATA_DUMP
                            const uint64_t oid = b.id();
                            b.skip(4);
                            const uint64_t n = b.u4();
                            const uint8_t t = b.u1();
                            const uint32_t ts = hprof_type_size(t, d.id_size);
                            if (!ts || t == 2) b.fail("unknown primitive element type " + std::to_string(t));
                            if (st == 0x23) b.skip(n * ts);
                            add_object(oid, 0, HprofKind::PrimitiveArray, n, t, 0);
                            break;
                        }
                        default:
                            b.fail("unknown heap-dump sub-record tag 0x" +
                                   std::string(1, "0123456789abcdef"[st >> 4]) + std::string(1, "0123456789abcdef"[st & 15]));
                    }
                }
                break;
            }
            default:
                d.skipped_records += 1;  // STACK_FRAME, STACK_TRACE, HEAP_DUMP_END, ...: skipped by their length
        }
        r.pos = body_end;
    }

    // References, now that every class is known: an instance's field values are its class's fields, then its
    // superclass's, and so on; object fields are the references. Chains are resolved once per class.
    std::unordered_map<uint64_t, size_t> class_index;
    for (size_t i = 0; i < d.classes.size(); ++i) class_index.emplace(d.classes[i].id, i);
    std::unordered_map<uint64_t, std::vector<uint32_t>> ref_offsets;  // class id -> byte offsets of object fields
    std::unordered_map<uint64_t, uint64_t> chain_bytes;
    auto offsets_of = [&](uint64_t cls) -> const std::vector<uint32_t>* {
        auto it = ref_offsets.find(cls);
        if (it != ref_offsets.end()) return &it->second;
        std::vector<uint32_t> offs;
        uint64_t at = 0;
        std::unordered_set<uint64_t> seen;
        for (uint64_t c = cls; c != 0;) {
            auto ci = class_index.find(c);
            if (ci == class_index.end() || !seen.insert(c).second || seen.size() > 4096) break;
            const HprofClass& k = d.classes[ci->second];
            for (uint8_t t : k.field_types) {
                if (t == 2) offs.push_back(static_cast<uint32_t>(at));
                at += hprof_type_size(t, d.id_size);
            }
            c = k.super_id;
        }
        chain_bytes[cls] = at;
        return &ref_offsets.emplace(cls, std::move(offs)).first->second;
    };
    d.ref_start.assign(d.obj_id.size() + 1, 0);
    for (size_t i = 0; i < d.obj_id.size(); ++i) {
        const HprofKind kind = static_cast<HprofKind>(d.obj_kind[i]);
        Reader v{data, pending[i].data, size, d.id_size, kind == HprofKind::Instance ? "INSTANCE_DUMP" : "OBJ_ARRAY_DUMP",
                 pending[i].data};
        if (kind == HprofKind::Instance) {
            const std::vector<uint32_t>* offs = offsets_of(d.obj_class[i]);
            if (chain_bytes[d.obj_class[i]] > d.obj_length[i])
                v.fail("instance " + std::to_string(d.obj_id[i]) + " holds " + std::to_string(d.obj_length[i]) +
                       " bytes of field values; its class chain declares " + std::to_string(chain_bytes[d.obj_class[i]]));
            for (uint32_t off : *offs) {
                v.pos = pending[i].data + off;
                d.ref_ids.push_back(v.id());
            }
        } else if (kind == HprofKind::ObjectArray) {
            for (uint64_t k = 0; k < d.obj_length[i]; ++k) d.ref_ids.push_back(v.id());
        }
        d.ref_start[i + 1] = d.ref_ids.size();
    }
    return d;
}

}  // namespace compactor
