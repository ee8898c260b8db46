// The install-floor microbenchmark, measured inside the core with the GIL released.
#include "bindings.hpp"
#include "compactor/compaction_floor.hpp"
#include "compactor/errors.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/install_floor.hpp"
#include "compactor/result_json.hpp"

using namespace compactor;

void register_bench(py::module_& m) {
    m.def("measure_install_floor", [](uint64_t pages, unsigned repetitions) {
        if (pages == 0 || repetitions == 0) throw py::value_error("pages and repetitions must be positive");
        std::vector<FloorMeasurement> f;
        {
            py::gil_scoped_release rel;
            f = measure_install_floor(pages, repetitions);
        }
        return py::module_::import("json").attr("loads")(floor_json(f));
    }, py::arg("pages"), py::arg("repetitions"),
          "ns per page of memcpy, first touch, WAKE, COPY, ZEROPAGE, MOVE (per page, batched) and write-then-MOVE.");
    m.def("measure_compaction_floor", [](const HeapSpace& space, const PlanData& plan, unsigned repetitions) {
        if (repetitions == 0) throw py::value_error("repetitions must be positive");
        if (plan.heap_size != space.size())
            throw PlanError("the plan is for a heap of " + std::to_string(plan.heap_size) + " bytes, the space has " +
                            std::to_string(space.size()));
        std::vector<FloorMeasurement> f;
        {
            py::gil_scoped_release rel;
            f = measure_compaction_floor(plan.view(), space.base(), repetitions);
        }
        return py::module_::import("json").attr("loads")(floor_json(f));
    }, py::arg("space"), py::arg("plan"), py::arg("repetitions"),
          "ns per to-space page of page copy, live-stride copy and compact_page over the plan, reading the space as "
          "from-space (it must hold the pristine heap; it is not written).");
}
