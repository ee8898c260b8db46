// CollectorConfig (every option of a collection, defaults defined once in the core) and collect(), which runs one
// collection with the GIL released and returns the shared JSON result plus raw samples.
#include <limits>
#include <type_traits>

#include "bindings.hpp"
#include "compactor/collector.hpp"
#include "compactor/config_options.hpp"
#include "compactor/errors.hpp"
#include "compactor/result_json.hpp"

using namespace compactor;

namespace {

using Class = py::class_<CollectorConfig>;

// One Python property per option, by the option's C++ type. Enums read and write their names; unsigned options
// refuse negative or too large values with a ValueError naming the option (pybind would wrap or TypeError).
template <typename T>
void bind_option(Class& c, const char* name, T CollectorConfig::*member, const char* doc) {
    if constexpr (std::is_same_v<T, RunLength>) {  // "auto" or a number of pages
        c.def_property(
            name, [member](const CollectorConfig& cfg) -> py::object {
                if ((cfg.*member).is_auto()) return py::str("auto");
                return py::int_((cfg.*member).pages);
            },
            [member, name](CollectorConfig& cfg, const py::object& v) {
                if (py::isinstance<py::str>(v) && v.cast<std::string>() == "auto") {
                    cfg.*member = RunLength{};
                } else if (py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v) && v.cast<long long>() >= 1 &&
                           v.cast<long long>() <= std::numeric_limits<unsigned>::max()) {
                    cfg.*member = RunLength{v.cast<unsigned>()};
                } else {
                    throw py::value_error(std::string(name) + " must be 'auto' or a number of pages >= 1, got " +
                                          py::repr(v).cast<std::string>());
                }
            },
            doc);
    } else if constexpr (std::is_enum_v<T>) {
        (void)member;
        const std::string option = name;
        c.def_property(
            name, [option](const CollectorConfig& cfg) { return option_text(cfg, option); },
            [option](CollectorConfig& cfg, const std::string& v) { set_option(cfg, option, v); },  // ValueError
            doc);
    } else if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>) {
        c.def_property(
            name, [member](const CollectorConfig& cfg) { return cfg.*member; },
            [member, name](CollectorConfig& cfg, long long v) {
                if (v < 0 || static_cast<unsigned long long>(v) > std::numeric_limits<T>::max())
                    throw py::value_error(std::string(name) + " must be a non-negative integer, got " +
                                          std::to_string(v));
                cfg.*member = static_cast<T>(v);
            },
            doc);
    } else {
        c.def_readwrite(name, member, doc);
    }
}

py::list option_table() {
    py::list rows;
    for (const OptionInfo& o : config_options()) {
        py::dict d;
        d["name"] = o.name;
        d["flag"] = o.flag;
        d["type"] = o.type;
        d["default"] = o.default_text;
        d["lowest"] = o.lowest;
        d["highest"] = o.highest;
        d["unit"] = o.unit;
        d["choices"] = o.choices;
        d["help"] = o.help;
        rows.append(d);
    }
    return rows;
}

py::dict trace_tables() { return py::module_::import("json").attr("loads")(trace_tables_json()); }

// The trace of a collection: the tables, and per thread its events as a (n, 7) uint64 array (kTraceColumns).
py::dict trace_dict(const CollectionStats& st) {
    py::dict d = trace_tables();
    py::list threads;
    for (const ThreadTrace& th : st.trace) {
        const auto n = static_cast<py::ssize_t>(th.events.size());
        py::array_t<uint64_t> ev({n, static_cast<py::ssize_t>(7)});
        auto w = ev.mutable_unchecked<2>();
        for (py::ssize_t i = 0; i < n; ++i) {
            const TraceEvent& e = th.events[static_cast<size_t>(i)];
            w(i, 0) = e.ts_ns, w(i, 1) = e.kind, w(i, 2) = e.phase, w(i, 3) = e.arg0, w(i, 4) = e.arg1;
            w(i, 5) = e.method, w(i, 6) = e.errno_;
        }
        py::dict t;
        t["name"] = th.thread;
        t["dropped"] = th.dropped;
        t["events"] = ev;
        threads.append(t);
    }
    d["threads"] = threads;
    return d;
}

}  // namespace

void register_collector(py::module_& m) {
    Class c(m, "CollectorConfig", "Every option of one collection (native/include/compactor/config_options.def). "
                                  "Defaults are the core's; validate() checks ranges.");
    c.def(py::init<>());
#define COMPACTOR_OPTION(name, type, default_value, lowest, highest, unit, help) \
    bind_option<type>(c, #name, &CollectorConfig::name, help);
#include "compactor/config_options.def"
    c.def_readwrite("watchdog", &CollectorConfig::watchdog_seconds, "alias of watchdog_seconds");
    c.def("validate", [](const CollectorConfig& cfg) { validate(cfg, page_size()); },
          "Raises ValueError naming the first option out of range and the allowed range.");
    c.def("to_json", [](const CollectorConfig& cfg) { return config_json(cfg); },
          "Every option as a JSON object (what compactor-runner --print-config prints).");
    m.def("config_options", &option_table,
          "The options table: name, runner flag, type, default, range, choices and help of every option.");
    m.attr("STRATEGIES") = [] {
        py::list names;
        for (Strategy s : kStrategies) names.append(strategy_name(s));
        return py::tuple(names);
    }();
    m.def("trace_tables", &trace_tables,
          "The names of a trace's event columns, kinds, phases and install methods (trace_events.hpp), and its clock.");
    m.attr("INJECT_DOUBLE_INSTALL") = kDoubleInstall;
    m.attr("INJECT_POISON") = kPoison;
    m.attr("MAX_MUTATORS") = kMaxMutators;
    m.attr("MAX_BATCH") = kMaxBatch;

    m.def("collect", [](HeapSpace& space, const PlanData& plan, const TableBundle& table, uint64_t digest_before,
                        const CollectorConfig& cfg) {
        // The core's collect() validates cfg first (std::invalid_argument arrives in Python as ValueError).
        if (table.roots.size() != space.roots().size()) throw py::value_error("the table's roots do not match the space");
        const ObjectTableView tv = table.table.view();
        CollectionOutcome out;
        {
            py::gil_scoped_release rel;
            out = collect(space, plan.view(), cfg, digest_before, &tv, table.roots.data());
        }
        py::dict d = py::module_::import("json").attr("loads")(collection_json(out, false));
        if (out.stats.traced) d["trace"] = trace_dict(out.stats);
        auto& v = out.stats.latency_samples_ns;
        py::array_t<uint64_t> samples(static_cast<py::ssize_t>(v.size()));
        if (!v.empty()) std::memcpy(samples.mutable_data(), v.data(), v.size() * 8);
        d["latency_samples_ns"] = samples;
        // Every logged mutator write as rows (identity, payload word, old value, new value), in each mutator's order.
        const auto& w = out.stats.writes;
        py::array_t<uint64_t> writes({static_cast<py::ssize_t>(w.size()), static_cast<py::ssize_t>(4)});
        if (!w.empty()) std::memcpy(writes.mutable_data(), w.data(), w.size() * sizeof(PayloadWrite));
        d["mutator_writes"] = writes;
        d["expected_digest"] = out.expected_digest;
        return d;
    },
          py::arg("space"), py::arg("plan"), py::arg("table"), py::arg("digest_before"), py::arg("config"));
}
