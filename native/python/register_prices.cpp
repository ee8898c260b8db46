// The MOVE prices of this machine (measured in the core with the GIL released) and the decision they imply.
#include <cmath>
#include <string>

#include "bindings.hpp"
#include "compactor/move_prices.hpp"

using namespace compactor;

namespace {

py::dict prices_dict(const MovePrices& p) {
    py::dict d;
    d["copy_ns_per_page"] = p.copy_ns_per_page;
    d["copy_ns_per_ioctl"] = p.copy_ns_per_ioctl;
    d["move_ns_per_page"] = p.move_ns_per_page;
    d["move_ns_per_ioctl"] = p.move_ns_per_ioctl;
    d["shootdown_ns"] = p.shootdown_ns;
    d["shootdowns_after_sleep"] = p.shootdowns_after_sleep;
    d["shootdowns_after_sleep_timed"] = p.shootdowns_after_sleep_timed;
    d["measured_ms"] = p.measured_ms;
    d["measured"] = p.measured;
    return d;
}

// Injected prices: the five prices are required, finite and not negative; shootdowns_after_sleep (and its timed
// check) are optional (0: a sleeping thread's CPU takes no shootdown) and checked alike; measured_ms and measured
// are optional (a dict from measure_move_prices() passes as it is).
MovePrices prices_from(const py::dict& d) {
    MovePrices p;
    auto price = [&](const char* key, bool optional = false) {
        if (optional && !d.contains(key)) return 0.0;
        if (!d.contains(key)) throw py::value_error(std::string("prices lacks '") + key + "'");
        const double v = py::cast<double>(d[key]);
        if (!std::isfinite(v) || v < 0)
            throw py::value_error(std::string("prices['") + key + "'] must be a finite number >= 0, got " +
                                  py::repr(d[key]).cast<std::string>());
        return v;
    };
    p.copy_ns_per_page = price("copy_ns_per_page");
    p.copy_ns_per_ioctl = price("copy_ns_per_ioctl");
    p.move_ns_per_page = price("move_ns_per_page");
    p.move_ns_per_ioctl = price("move_ns_per_ioctl");
    p.shootdown_ns = price("shootdown_ns");
    p.shootdowns_after_sleep = price("shootdowns_after_sleep", true);
    p.shootdowns_after_sleep_timed = price("shootdowns_after_sleep_timed", true);
    if (d.contains("measured_ms")) p.measured_ms = py::cast<double>(d["measured_ms"]);
    if (d.contains("measured")) p.measured = py::cast<bool>(d["measured"]);
    return p;
}

}  // namespace

void register_prices(py::module_& m) {
    m.def("measure_move_prices", [](bool fresh) {
        MovePrices p;
        {
            py::gil_scoped_release rel;
            p = fresh ? measure_move_prices() : machine_move_prices();
        }
        return prices_dict(p);
    }, py::arg("fresh") = false,
          "This machine's COPY and MOVE prices in ns (per page, per ioctl, and MOVE's shootdown while another thread "
          "runs), and how many MOVEs after another thread went to sleep still pay the shootdown: measured once per process and cached, or measured anew with fresh=True (the cache is kept). Raises "
          "UffdUnavailable without UFFDIO_MOVE.");
    m.def("set_collector_move_prices", [](const py::object& prices) {
        if (prices.is_none()) {
            set_collector_move_prices(nullptr);
            return;
        }
        MovePrices p = prices_from(prices.cast<py::dict>());
        p.measured = false;
        set_collector_move_prices(&p);
    }, py::arg("prices"),
          "Makes hybrid's auto policy follow these prices instead of this machine's (a what-if, e.g. free "
          "shootdowns as on arm64); None restores the measured ones.");
    m.def("move_is_cheaper", [](const py::dict& prices, uint64_t pages, bool another_thread_on_cpu) {
        return move_is_cheaper(prices_from(prices), pages, another_thread_on_cpu);
    }, py::arg("prices"), py::arg("pages"), py::arg("another_thread_on_cpu"),
          "Whether one MOVE ioctl installs a run of `pages` pages cheaper than one COPY ioctl at these prices.");
    m.def("break_even_run", [](const py::dict& prices, bool another_thread_on_cpu) -> py::object {
        const uint64_t n = break_even_run(prices_from(prices), another_thread_on_cpu);
        if (n == kMoveNever) return py::none();
        return py::int_(n);
    }, py::arg("prices"), py::arg("another_thread_on_cpu"),
          "The shortest run from which on MOVE is cheaper than COPY (1: always), or None when no run is long enough.");
}
