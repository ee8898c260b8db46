// HPROF heap dumps (JAVA PROFILE 1.0.2 and 1.0.3, 4- and 8-byte identifiers; Android's additions): a strict,
// bounded parser that turns a dump into the object graph the heap model needs. Untrusted input: every length is
// checked against the bytes that really remain, nothing is allocated from a length field before that check.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace compactor {

// A malformed dump: the byte offset and the record (or sub-record) where parsing stopped, and why.
struct HprofError : std::runtime_error {
    HprofError(uint64_t offset, const std::string& record, const std::string& why)
        : std::runtime_error("HPROF: " + why + " (" + record + " at byte offset " + std::to_string(offset) + ")"),
          offset(offset), record(record) {}
    uint64_t offset;
    std::string record;
};

enum class HprofKind : uint8_t { Instance = 0, ObjectArray = 1, PrimitiveArray = 2 };

struct HprofClass {
    uint64_t id = 0, super_id = 0;
    uint32_t instance_size = 0;     // as the dump states it
    uint32_t heap = 0;              // HEAP_DUMP_INFO id current at the CLASS_DUMP (0: none given)
    std::vector<uint8_t> field_types;  // this class's own instance fields, in dump order (basic type codes)
    std::vector<uint64_t> field_names; // their name string ids
    std::vector<uint64_t> static_refs; // values of its static object fields (references from a class object)
};

// Every object of the dump in file order, with its references (object fields of instances, elements of object
// arrays) as a CSR over `ref_ids` (null references are kept as 0: the caller decides).
struct HprofDump {
    std::string version;            // "JAVA PROFILE 1.0.2" or "1.0.3"
    uint32_t id_size = 0;
    std::vector<uint64_t> obj_id, obj_class;  // class: the instance's class, the array's class (0 for primitives)
    std::vector<uint8_t> obj_kind;
    std::vector<uint32_t> obj_heap;
    std::vector<uint64_t> obj_length;     // instances: field bytes; arrays: element count
    std::vector<uint8_t> obj_elem_type;   // primitive arrays: basic type code; else 0
    std::vector<uint64_t> ref_start, ref_ids;
    std::vector<uint64_t> root_id;
    std::vector<uint8_t> root_type;       // the sub-record tag (0x01..0x08, 0x89..0x8E, 0x90, 0xFF)
    std::vector<HprofClass> classes;
    std::unordered_map<uint64_t, std::string> strings;
    std::unordered_map<uint64_t, uint64_t> class_name;  // class object id -> name string id (LOAD_CLASS)
    std::unordered_map<uint32_t, uint64_t> heap_name;   // HEAP_DUMP_INFO heap id -> name string id
    uint64_t records = 0, skipped_records = 0;
};

// Size in bytes of a basic type code (2 = object: the identifier size); 0 for an unknown code.
uint32_t hprof_type_size(uint8_t type, uint32_t id_size);

// Parses a whole dump held in memory. Throws HprofError.
HprofDump parse_hprof(const uint8_t* data, uint64_t size);

}  // namespace compactor
