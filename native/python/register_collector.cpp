// CollectorConfig (every option of a collection, defaults defined once in the core) and collect(), which runs one
// collection with the GIL released and returns the shared JSON result plus raw samples.
#include <limits>

#include "bindings.hpp"
#include "compactor/collector.hpp"
#include "compactor/errors.hpp"
#include "compactor/result_json.hpp"

using namespace compactor;

namespace {

// An enum option exposed as its name (the strings Python, the runner and the JSON share).
template <typename E>
void enum_property(py::class_<CollectorConfig>& c, const char* name, E CollectorConfig::*member,
                   const char* (*to_name)(E), E (*parse)(const std::string&)) {
    c.def_property(
        name, [member, to_name](const CollectorConfig& cfg) { return std::string(to_name(cfg.*member)); },
        [member, parse](CollectorConfig& cfg, const std::string& v) { cfg.*member = parse(v); });  // ValueError
}

// An unsigned option set from Python: a negative or too large value is a ValueError naming the option.
template <typename U>
void unsigned_property(py::class_<CollectorConfig>& c, const char* name, U CollectorConfig::*member) {
    c.def_property(
        name, [member](const CollectorConfig& cfg) { return cfg.*member; },
        [member, name](CollectorConfig& cfg, long long v) {
            if (v < 0 || static_cast<unsigned long long>(v) > std::numeric_limits<U>::max())
                throw py::value_error(std::string(name) + " must be a non-negative integer, got " + std::to_string(v));
            cfg.*member = static_cast<U>(v);
        });
}

}  // namespace

void register_collector(py::module_& m) {
    py::class_<CollectorConfig> c(m, "CollectorConfig",
                                  "Every option of one collection. Defaults are the core's; validate() checks ranges.");
    c.def(py::init<>());
    enum_property(c, "strategy", &CollectorConfig::strategy, strategy_name, parse_strategy);
    enum_property(c, "faults", &CollectorConfig::faults, fault_mode_name, parse_fault_mode);
    enum_property(c, "access", &CollectorConfig::access, access_name, parse_access);
    enum_property(c, "backoff", &CollectorConfig::backoff, backoff_name, parse_backoff);
    unsigned_property(c, "mutators", &CollectorConfig::mutators);
    unsigned_property(c, "batch", &CollectorConfig::batch);
    unsigned_property(c, "move_min_run", &CollectorConfig::move_min_run);
    unsigned_property(c, "seed", &CollectorConfig::seed);
    unsigned_property(c, "hops", &CollectorConfig::hops);
    unsigned_property(c, "max_samples", &CollectorConfig::max_samples);
    unsigned_property(c, "release_chunk", &CollectorConfig::release_chunk);
    c.def_readwrite("claim_ahead", &CollectorConfig::claim_ahead);
    c.def_readwrite("watchdog", &CollectorConfig::watchdog_seconds)
        .def_readwrite("user_mode_only", &CollectorConfig::user_mode_only)
        .def_readwrite("write_fraction", &CollectorConfig::write_fraction)
        .def_readwrite("gc_cpu", &CollectorConfig::gc_cpu)
        .def_readwrite("mutator_cpus", &CollectorConfig::mutator_cpus)
        .def_property(
            "inject_errno", [](const CollectorConfig& cfg) { return cfg.inject.err; },
            [](CollectorConfig& cfg, int v) { cfg.inject.err = v; })
        .def_property(
            "inject_fraction", [](const CollectorConfig& cfg) { return cfg.inject.fraction; },
            [](CollectorConfig& cfg, double v) { cfg.inject.fraction = v; })
        .def_readwrite("swapped", &CollectorConfig::swapped)
        .def_readwrite("stall_seconds", &CollectorConfig::stall_seconds)
        .def_readwrite("late_access_seconds", &CollectorConfig::late_access_seconds)
        .def("validate", [](const CollectorConfig& cfg) { validate(cfg, page_size()); },
             "Raises ValueError naming the first option out of range and the allowed range.");
    m.attr("STRATEGIES") = [] {
        py::list names;
        for (Strategy s : kStrategies) names.append(strategy_name(s));
        return py::tuple(names);
    }();
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
        py::dict d = py::module_::import("json").attr("loads")(collection_json(out));
        auto& v = out.stats.latency_samples_ns;
        py::array_t<uint64_t> samples(static_cast<py::ssize_t>(v.size()));
        if (!v.empty()) std::memcpy(samples.mutable_data(), v.data(), v.size() * 8);
        d["latency_samples_ns"] = samples;
        d["expected_digest"] = out.expected_digest;
        return d;
    },
          py::arg("space"), py::arg("plan"), py::arg("table"), py::arg("digest_before"), py::arg("config"));
}
