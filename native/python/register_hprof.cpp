// parse_hprof(): the HPROF parser over a buffer (GIL released), returning numpy arrays of the object graph.
#include "bindings.hpp"
#include "compactor/hprof.hpp"

using namespace compactor;

namespace {

template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
    auto* heap_vec = new std::vector<T>(std::move(v));
    py::capsule owner(heap_vec, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>({static_cast<py::ssize_t>(heap_vec->size())}, {static_cast<py::ssize_t>(sizeof(T))},
                          heap_vec->data(), owner);
}

}  // namespace

void register_hprof(py::module_& m) {
    m.def("parse_hprof", [](py::buffer buf) {
        py::buffer_info info = buf.request();
        HprofDump d;
        {
            py::gil_scoped_release rel;
            d = parse_hprof(static_cast<const uint8_t*>(info.ptr), static_cast<uint64_t>(info.size * info.itemsize));
        }
        py::dict out;
        out["version"] = d.version;
        out["id_size"] = d.id_size;
        out["records"] = d.records;
        out["skipped_records"] = d.skipped_records;
        out["obj_id"] = to_numpy(std::move(d.obj_id));
        out["obj_class"] = to_numpy(std::move(d.obj_class));
        out["obj_kind"] = to_numpy(std::move(d.obj_kind));
        out["obj_heap"] = to_numpy(std::move(d.obj_heap));
        out["obj_length"] = to_numpy(std::move(d.obj_length));
        out["obj_elem_type"] = to_numpy(std::move(d.obj_elem_type));
        out["ref_start"] = to_numpy(std::move(d.ref_start));
        out["ref_ids"] = to_numpy(std::move(d.ref_ids));
        out["root_id"] = to_numpy(std::move(d.root_id));
        out["root_type"] = to_numpy(std::move(d.root_type));
        py::list classes;
        for (const HprofClass& c : d.classes) {
            py::dict k;
            k["id"] = c.id;
            k["super_id"] = c.super_id;
            k["instance_size"] = c.instance_size;
            k["heap"] = c.heap;
            k["field_types"] = py::bytes(reinterpret_cast<const char*>(c.field_types.data()), c.field_types.size());
            k["field_names"] = c.field_names;
            k["static_refs"] = c.static_refs;
            classes.append(k);
        }
        out["classes"] = classes;
        py::dict strings;
        for (const auto& [id, text] : d.strings) strings[py::int_(id)] = py::bytes(text);
        out["strings"] = strings;
        py::dict names;
        for (const auto& [id, name] : d.class_name) names[py::int_(id)] = name;
        out["class_name"] = names;
        py::dict heaps;
        for (const auto& [id, name] : d.heap_name) heaps[py::int_(id)] = name;
        out["heap_name"] = heaps;
        return out;
    }, py::arg("data"), "Parses a whole HPROF dump (any buffer); raises compactor.HprofError naming the offset and record.");
}
