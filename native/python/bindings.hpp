// Shared by the binding files: one register_* function per area, and the translation of core exceptions into
// the Python exceptions of compactor.errors.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "compactor/heap_space.hpp"

namespace py = pybind11;

// An object table with its root objects, validated against a heap size (compactor._native.ObjectTable).
struct TableBundle {
    compactor::ObjectTable table;
    std::vector<int32_t> roots;
    uint64_t heap_size = 0;
};

void register_errors(py::module_& m);
void register_uffd(py::module_& m);
void register_heap(py::module_& m);
void register_collector(py::module_& m);
void register_bench(py::module_& m);
void register_hprof(py::module_& m);
void register_prices(py::module_& m);

// Raises compactor.errors.<name>(*args).
[[noreturn]] void raise_python(const char* name, const py::tuple& args);

// A contiguous numpy array of T copied into a std::vector, with a clear error naming `what` for the wrong dtype.
template <typename T>
std::vector<T> to_vector(const py::array& a, const char* what) {
    if (!py::isinstance<py::array_t<T>>(a) || a.ndim() != 1)
        throw py::type_error(std::string(what) + " must be a one-dimensional numpy array of " + py::str(py::dtype::of<T>()).cast<std::string>());
    auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
    return std::vector<T>(arr.data(), arr.data() + arr.size());
}
