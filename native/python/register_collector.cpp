// collect(): runs one collection with the GIL released and returns the shared JSON result plus raw samples.
#include "bindings.hpp"
#include "compactor/collector.hpp"
#include "compactor/errors.hpp"
#include "compactor/result_json.hpp"

using namespace compactor;

void register_collector(py::module_& m) {
    m.def("collect", [](HeapSpace& space, const PlanData& plan, const TableBundle& table, uint64_t digest_before,
                        const std::string& strategy, const std::string& faults, unsigned mutators, unsigned batch,
                        const std::string& access, uint64_t seed, double watchdog, bool user_mode_only,
                        double write_fraction, double inject_fraction, int inject_errno, double stall_seconds,
                        uint64_t release_chunk) {
        CollectorConfig cfg;
        try {
            cfg.strategy = parse_strategy(strategy);
            cfg.faults = parse_fault_mode(faults);
            cfg.access = parse_access(access);
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
        if (batch == 0) throw py::value_error("batch must be at least 1 page");
        if (mutators > 256) throw py::value_error("at most 256 mutators");
        if (!(watchdog > 0)) throw py::value_error("watchdog must be a positive number of seconds");
        if (write_fraction < 0 || write_fraction > 1) throw py::value_error("write_fraction must lie in [0, 1]");
        if (inject_fraction < 0 || inject_fraction > 1) throw py::value_error("inject_fraction must lie in [0, 1]");
        cfg.mutators = mutators;
        cfg.batch = batch;
        cfg.seed = seed;
        cfg.watchdog_seconds = watchdog;
        cfg.user_mode_only = user_mode_only;
        cfg.write_fraction = write_fraction;
        cfg.inject.fraction = inject_fraction;
        cfg.inject.err = inject_errno;
        cfg.stall_seconds = stall_seconds;
        cfg.release_chunk = release_chunk;
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
          py::arg("space"), py::arg("plan"), py::arg("table"), py::arg("digest_before"), py::arg("strategy"),
          py::arg("faults"), py::arg("mutators"), py::arg("batch"), py::arg("access"), py::arg("seed"),
          py::arg("watchdog"), py::arg("user_mode_only"), py::arg("write_fraction"), py::arg("inject_fraction"),
          py::arg("inject_errno"), py::arg("stall_seconds"), py::arg("release_chunk"));
}
