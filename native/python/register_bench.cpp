// The install-floor microbenchmark, measured inside the core with the GIL released.
#include "bindings.hpp"
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
}
