// compactor._native: a thin layer over the C++ core (native/core). One register_* function per area.
#include "bindings.hpp"

#include "compactor/errors.hpp"
#include "compactor/hprof.hpp"

[[noreturn]] void raise_python(const char* name, const py::tuple& args) {
    py::object cls = py::module_::import("compactor.errors").attr(name);
    py::object exc = cls(*args);
    PyErr_SetObject(cls.ptr(), exc.ptr());
    throw py::error_already_set();
}

void register_errors(py::module_&) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const compactor::UffdUnavailable& e) {
            raise_python("UffdUnavailable", py::make_tuple(e.err, e.what()));
        } catch (const compactor::UffdError& e) {
            raise_python("UffdError", py::make_tuple(e.err, e.what(), e.op, e.done));
        } catch (const compactor::SysError& e) {
            raise_python("SystemCallError", py::make_tuple(e.err, e.what()));
        } catch (const compactor::PlanError& e) {
            raise_python("PlanFileError", py::make_tuple(e.what()));
        } catch (const compactor::HeapCorruption& e) {
            raise_python("HeapCorruption", py::make_tuple(e.what()));
        } catch (const compactor::WatchdogTimeout& e) {
            raise_python("WatchdogTimeout", py::make_tuple(e.what()));
        } catch (const compactor::HprofError& e) {
            raise_python("HprofError", py::make_tuple(e.what(), e.offset, e.record));
        }
    });
}

PYBIND11_MODULE(_native, m) {
    m.doc() = "compactor's C++ core: userfaultfd, heap image, page compaction, collectors, install floor, MOVE prices";
    register_errors(m);
    register_uffd(m);
    register_heap(m);
    register_collector(m);
    register_bench(m);
    register_hprof(m);
    register_prices(m);
}
