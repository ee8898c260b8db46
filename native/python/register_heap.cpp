// The heap side: object layout constants, the object table and plan as native objects (validated once), the
// moving space, the independent graph digest, and the plan file (its format, writer and reader).
#include "bindings.hpp"
#include "compactor/errors.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/marking.hpp"
#include "compactor/memory_limits.hpp"
#include "compactor/object_layout.hpp"
#include "compactor/plan_checks.hpp"
#include "compactor/plan_file.hpp"
#include "compactor/plan_file_format.hpp"
#include "compactor/verify.hpp"

using namespace compactor;

namespace {

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
    py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
    return a;
}

}  // namespace

void register_heap(py::module_& m) {
    m.def("layout_info", [] {
        py::dict d;
        d["object_alignment"] = layout::kObjectAlignment;
        d["chunk_size"] = layout::kChunkSize;
        d["null_ref"] = layout::kNullRef;
        d["class_object"] = layout::kClassObject;
        d["class_filler"] = layout::kClassFiller;
        d["header_size"] = layout::kHeaderSize;
        d["identity_offset"] = layout::kIdentityOffset;
        d["refs_offset"] = layout::kRefsOffset;
        d["min_object_size"] = layout::kMinObjectSize;
        d["max_heap_size"] = layout::kMaxHeapSize;
        d["size_offset"] = offsetof(layout::ObjectHeader, size);
        d["num_refs_offset"] = offsetof(layout::ObjectHeader, num_refs);
        d["klass_offset"] = offsetof(layout::ObjectHeader, klass);
        return d;
    }, "Offsets and constants of the C++ object layout (native/include/compactor/object_layout.hpp).");
    m.def("initial_payload_word", &layout::initial_payload_word, py::arg("identity"), py::arg("index"));
    m.def("payload_term", &payload_term, py::arg("identity"), py::arg("index"), py::arg("value"));

    using U64s = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;
    using U32s = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>;
    using I32s = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
    using Bools = py::array_t<bool, py::array::c_style | py::array::forcecast>;
    m.def("collection_need", [](uint64_t heap, uint64_t live, bool concurrent, unsigned mutators, uint64_t trace_events) {
        py::list parts;
        for (const NeedPart& n : collection_need(heap, live, concurrent, mutators, trace_events, thread_stack_bytes()))
            parts.append(py::make_tuple(n.what, n.memory, n.address_space));
        return parts;
    }, py::arg("heap"), py::arg("live"), py::arg("concurrent"), py::arg("mutators"), py::arg("trace_events"),
       "What one collection maps of its own, as (what, resident bytes, bytes of address space) parts: the core's "
       "one definition (native/include/compactor/memory_limits.hpp), which compactor-runner checks too.");
    m.def("memory_limits", [] {
        py::list out;
        for (const MemoryLimit& l : memory_limits())
            out.append(py::make_tuple(l.name, l.source, l.available, l.address_space));
        return out;
    }, "Every limit on the memory this process may still use, read now, as (name, source, available bytes, whether "
       "it bounds address space): the core's one definition (memory_limits.hpp).");
    m.def("cgroup_dirs", [] {
        py::list out;
        for (const auto& [version, dir] : cgroup_dirs()) out.append(py::make_tuple(version, dir));
        return out;
    }, "This process's memory cgroup and its ancestors, innermost first, as (version '1' or '2', directory).");
    m.def("memory_shortfall", [](uint64_t need_memory, uint64_t need_address_space, const std::string& what,
                                 const std::string& parts, const std::string& remedy) -> py::object {
        const auto s = memory_shortfall(need_memory, need_address_space, what, parts, remedy);
        if (!s) return py::none();
        return py::dict(py::arg("message") = s->message, py::arg("need") = s->need,
                        py::arg("available") = s->limit.available, py::arg("limit") = s->limit.name,
                        py::arg("source") = s->limit.source);
    }, py::arg("need_memory"), py::arg("need_address_space"), py::arg("what"), py::arg("parts"), py::arg("remedy"),
       "None when the need fits under every limit; else the limit that falls shortest: message, need, available, "
       "limit (its name) and source.");
    m.def("mark_reachable", [](const U64s& ref_start, const I32s& refs, const I32s& roots, const py::object& premarked) {
        if (ref_start.ndim() != 1 || ref_start.size() < 1) throw py::value_error("ref_start must hold count + 1 entries");
        const uint64_t count = static_cast<uint64_t>(ref_start.size()) - 1;
        const uint64_t* rs = ref_start.data();
        if (rs[0] != 0 || rs[count] != static_cast<uint64_t>(refs.size()))
            throw py::value_error("ref_start must run from 0 to the number of references (" + std::to_string(refs.size()) + ")");
        for (uint64_t i = 0; i < count; ++i)
            if (rs[i + 1] < rs[i]) throw py::value_error("ref_start must not decrease (at object " + std::to_string(i) + ")");
        Bools live(static_cast<py::ssize_t>(count));
        std::memset(live.mutable_data(), 0, count);
        if (!premarked.is_none()) {  // objects taken as marked already: the traversal never enters them
            const Bools pre = premarked.cast<Bools>();
            if (static_cast<uint64_t>(pre.size()) != count) throw py::value_error("premarked must have one entry per object");
            std::memcpy(live.mutable_data(), pre.data(), count);
        }
        {
            py::gil_scoped_release rel;
            mark_reachable(count, rs, refs.data(), roots.data(), static_cast<uint64_t>(roots.size()),
                           reinterpret_cast<uint8_t*>(live.mutable_data()));
        }
        return live;
    }, py::arg("ref_start"), py::arg("refs"), py::arg("roots"), py::arg("premarked") = py::none(),
       "The objects reachable from the roots (bool per object): the planner's marking (native/core/marking.cpp). "
       "Objects true in `premarked` count as marked already and are never traversed (a young collection's old "
       "generation); they are true in the result.");
    m.def("live_words_bitmap", [](uint64_t heap_size, const U32s& offset, const U32s& size, const Bools& live) {
        if (heap_size % layout::kChunkSize) throw py::value_error("heap size must be a multiple of the chunk size");
        const uint64_t n = static_cast<uint64_t>(offset.size());
        if (static_cast<uint64_t>(size.size()) != n || static_cast<uint64_t>(live.size()) != n)
            throw py::value_error("offset, size and live must have one entry per object");
        for (uint64_t i = 0; i < n; ++i)  // what the bitmap relies on; the table was validated, a caller's arrays may not be
            if (offset.data()[i] % 8 || size.data()[i] % 8 || uint64_t{offset.data()[i]} + size.data()[i] > heap_size)
                throw py::value_error("object " + std::to_string(i) + " is unaligned or ends beyond the heap");
        U64s words(static_cast<py::ssize_t>(heap_size / layout::kChunkSize));
        std::memset(words.mutable_data(), 0, heap_size / layout::kChunkSize * 8);
        {
            py::gil_scoped_release rel;
            live_words_bitmap(n, offset.data(), size.data(), reinterpret_cast<const uint8_t*>(live.data()),
                              words.mutable_data());
        }
        return words;
    }, py::arg("heap_size"), py::arg("offset"), py::arg("size"), py::arg("live"),
       "ART's live-words bitmap: bit b of word c is set when 8-byte word 64*c + b is part of a live object.");

    py::class_<TableBundle>(m, "ObjectTable", "An object table and its roots, validated against a heap size.")
        .def(py::init([](uint64_t heap_size, const py::array& offset, const py::array& size, const py::array& num_refs,
                         const py::array& identity, const py::array& refs, const py::array& roots) {
                 auto t = std::make_unique<TableBundle>();
                 t->heap_size = heap_size;
                 t->table.offset = to_vector<uint32_t>(offset, "offset");
                 t->table.size = to_vector<uint32_t>(size, "size");
                 t->table.num_refs = to_vector<uint16_t>(num_refs, "num_refs");
                 t->table.identity = to_vector<uint64_t>(identity, "identity");
                 t->table.refs = to_vector<int32_t>(refs, "refs");
                 t->roots = to_vector<int32_t>(roots, "roots");
                 assemble_object_table(t->table, t->roots, heap_size);
                 return t;
             }),
             py::arg("heap_size"), py::arg("offset"), py::arg("size"), py::arg("num_refs"), py::arg("identity"),
             py::arg("refs"), py::arg("roots"))
        .def_property_readonly("count", [](const TableBundle& t) { return t.table.offset.size(); })
        .def_property_readonly("heap_size", [](const TableBundle& t) { return t.heap_size; });

    py::class_<PlanData>(m, "Plan", "Plan arrays in native form, validated (bounds and consistency) on construction.")
        .def(py::init([](uint64_t heap_size, uint64_t page_size, const py::array& live_words, const py::array& chunk_offset,
                         const py::array& first_obj, const py::array& first_obj_header, const py::array& pre_compact_offset,
                         uint64_t dense_prefix_pages, uint64_t slide_begin, uint64_t post_compact_end, uint64_t live_bytes,
                         uint64_t old_gen_end) {
                 auto p = std::make_unique<PlanData>();
                 p->heap_size = heap_size;
                 p->page_size = page_size;
                 p->live_words = to_vector<uint64_t>(live_words, "live_words");
                 p->chunk_offset = to_vector<uint32_t>(chunk_offset, "chunk_offset");
                 p->first_obj = to_vector<uint32_t>(first_obj, "first_obj");
                 p->first_obj_header = to_vector<uint64_t>(first_obj_header, "first_obj_header");
                 p->pre_compact_offset = to_vector<uint32_t>(pre_compact_offset, "pre_compact_offset");
                 p->dense_prefix_pages = dense_prefix_pages;
                 p->slide_begin = slide_begin;
                 p->post_compact_end = post_compact_end;
                 p->live_bytes = live_bytes;
                 p->old_gen_end = old_gen_end;
                 assemble_plan(*p);
                 return p;
             }),
             py::arg("heap_size"), py::arg("page_size"), py::arg("live_words"), py::arg("chunk_offset"), py::arg("first_obj"),
             py::arg("first_obj_header"), py::arg("pre_compact_offset"), py::arg("dense_prefix_pages"),
             py::arg("slide_begin"), py::arg("post_compact_end"), py::arg("live_bytes"), py::arg("old_gen_end") = 0);

    py::class_<HeapSpace>(m, "HeapSpace", "The moving space (one anonymous mapping) and the roots outside it.")
        .def(py::init<uint64_t>(), py::arg("heap_size"))
        .def_property_readonly("address", [](const HeapSpace& h) { return reinterpret_cast<uint64_t>(h.base()); })
        .def_property_readonly("size", &HeapSpace::size)
        .def("reset", [](HeapSpace& h, const TableBundle& t, bool keep_image) {
            if (t.heap_size != h.size()) throw PlanError("object table is for a heap of " + std::to_string(t.heap_size) + " bytes");
            py::gil_scoped_release rel;
            h.reset(t.table.view(), t.roots.data(), t.roots.size(), keep_image);
        }, py::arg("table"), py::arg("keep_image") = false,
           "Materializes the table into the space and resets the roots (the pristine state); keep_image keeps a copy "
           "of the pristine bytes for restore() (one more heap of memory).")
        .def("restore", [](HeapSpace& h) {
            py::gil_scoped_release rel;
            h.restore();
        }, "The pristine state from the kept image (memory speed); SystemCallError when none is kept.")
        .def_property_readonly("has_pristine_image", &HeapSpace::has_pristine_image)
        .def("drop_pristine_image", &HeapSpace::drop_pristine_image, "Gives the kept image's memory back.")
        .def("roots", [](HeapSpace& h) { return to_numpy(h.roots()); }, "A copy of the root references (heap offsets).")
        .def("set_root", [](HeapSpace& h, size_t i, uint32_t v) {
            if (i >= h.roots().size()) throw py::index_error("root index out of range");
            h.roots()[i] = v;
        })
        .def("view", [](py::object self) {
            HeapSpace& h = self.cast<HeapSpace&>();
            return py::array_t<uint8_t>({static_cast<py::ssize_t>(h.size())}, {1}, h.base(), self);
        }, "A writable numpy view of the whole space (for inspection and fault-injection tests; never during a collection).")
        .def("digest", [](HeapSpace& h, const std::string& method) {
            const DigestMethod m = method == "auto" ? DigestMethod::Auto : method == "fast" ? DigestMethod::Fast
                                 : method == "precise" ? DigestMethod::Precise
                                 : throw py::value_error("method must be auto, fast or precise, got '" + method + "'");
            GraphDigest g;
            {
                py::gil_scoped_release rel;
                g = graph_digest(h.base(), h.size(), h.roots().data(), h.roots().size(), m);
            }
            return py::make_tuple(g.digest, g.objects, g.bytes);
        }, py::arg("method") = "auto",
           "(digest, reachable objects, reachable bytes) of the graph reachable from the roots. method: 'auto' (the "
           "fast two-pass traversal, several threads on large heaps; the precise one names an anomaly), 'fast' "
           "(only the fast one: an anomaly raises unnamed) or 'precise' (only the single-threaded depth-first one)");

    m.def("plan_file_format", [] {
        auto fields = [](const auto& record) {
            py::dict d;
            for (const plan_file::RecordField& f : record) d[f.name] = py::make_tuple(f.offset, f.size);
            return d;
        };
        py::dict sections;
        for (const plan_file::SectionKind& k : plan_file::kSections) sections[k.name] = static_cast<uint32_t>(k.id);
        py::dict d;
        d["magic"] = py::bytes(plan_file::kMagic, sizeof plan_file::kMagic);
        d["version"] = plan_file::kVersion;
        d["header_size"] = sizeof(plan_file::Header);
        d["section_entry_size"] = sizeof(plan_file::SectionEntry);
        d["section_alignment"] = plan_file::kSectionAlignment;
        d["header_fields"] = fields(plan_file::kHeaderFields);
        d["section_entry_fields"] = fields(plan_file::kSectionEntryFields);
        d["sections"] = sections;
        return d;
    }, "The plan-file format (native/include/compactor/plan_file_format.hpp): the fields of the header and of "
       "a section entry as (offset, size), the section ids by array name.");

    m.def("save_plan_file", [](const std::string& path, const PlanData& plan, const TableBundle& table,
                               uint64_t expected_digest, uint64_t seed, const std::string& description) {
        if (table.heap_size != plan.heap_size)
            throw PlanError("object table is for a heap of " + std::to_string(table.heap_size) + " bytes, the plan for one of " +
                            std::to_string(plan.heap_size));
        py::gil_scoped_release rel;
        save_plan_file(path, plan.view(), table.table.view(), table.roots.data(), table.roots.size(), expected_digest,
                       seed, description);
    }, py::arg("path"), py::arg("plan"), py::arg("table"), py::arg("expected_digest"), py::arg("seed"),
       py::arg("description"),
       "Writes a plan file atomically (temporary file, then rename); PlanFileError for an inconsistent plan, "
       "SystemCallError when the file cannot be written.");

    m.def("load_plan_file", [](const std::string& path) {
        PlanBundle b;
        {
            py::gil_scoped_release rel;
            b = load_plan_file(path);
        }
        // The arrays under their section names, so that the dict and the format cannot disagree.
        auto key = [](plan_file::SectionId id) { return plan_file::kSections[id - 1].name; };
        py::dict d;
        d["heap_size"] = b.plan.heap_size;
        d["page_size"] = b.plan.page_size;
        d["dense_prefix_pages"] = b.plan.dense_prefix_pages;
        d["slide_begin"] = b.plan.slide_begin;
        d["post_compact_end"] = b.plan.post_compact_end;
        d["live_bytes"] = b.plan.live_bytes;
        d["old_gen_end"] = b.plan.old_gen_end;
        d["expected_digest"] = b.expected_digest;
        d["seed"] = b.seed;
        d[key(plan_file::kDescription)] = b.description;
        d[key(plan_file::kObjOffset)] = to_numpy(b.table.offset);
        d[key(plan_file::kObjSize)] = to_numpy(b.table.size);
        d[key(plan_file::kObjNumRefs)] = to_numpy(b.table.num_refs);
        d[key(plan_file::kObjIdentity)] = to_numpy(b.table.identity);
        d[key(plan_file::kRefs)] = to_numpy(b.table.refs);
        d[key(plan_file::kRoots)] = to_numpy(b.root_objects);
        d[key(plan_file::kLiveWords)] = to_numpy(b.plan.live_words);
        d[key(plan_file::kChunkOffset)] = to_numpy(b.plan.chunk_offset);
        d[key(plan_file::kFirstObj)] = to_numpy(b.plan.first_obj);
        d[key(plan_file::kFirstObjHeader)] = to_numpy(b.plan.first_obj_header);
        d[key(plan_file::kPreCompactOffset)] = to_numpy(b.plan.pre_compact_offset);
        return d;
    }, py::arg("path"), "Reads and validates a plan file (raises PlanFileError naming the problem).");
}
