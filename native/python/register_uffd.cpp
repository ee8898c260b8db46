// userfaultfd: probe, the Uffd object (every ioctl, GIL released), events, and a native toucher thread for tests.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "bindings.hpp"
#include "compactor/errors.hpp"
#include "compactor/mapping.hpp"
#include "compactor/uffd.hpp"

using namespace compactor;

namespace {

std::string hexs(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

std::string hint(const std::string& op, int err, const Userfaultfd& u, long long done) {
    switch (err) {
        case EEXIST: return " — a destination page is already populated";
        case ENOENT:
            return op == "MOVE" ? " — a source page is missing (pass allow_src_holes=True to skip holes)"
                                : " — the destination is not registered with this userfaultfd";
        case EBUSY: return " — a source page is not exclusive to this process (after fork, KSM or pinning); MADV_DONTFORK the source";
        case EAGAIN:
            return done == 0 ? " — a non-cooperative event is pending: read events first" : " — retried and still EAGAIN";
        case EINVAL:
            if (op == "MOVE" && !(u.available() & UFFD_FEATURE_MOVE))
                return " — this kernel lacks UFFD_FEATURE_MOVE (UFFDIO_MOVE needs Linux >= 6.8)";
            if (op == "POISON" && !(u.available() & UFFD_FEATURE_POISON))
                return " — this kernel lacks UFFD_FEATURE_POISON (Linux >= 6.6)";
            return " — unaligned address or length, zero length, unknown mode bits, or a range not registered "
                   "(or not registered for this operation)";
        case ENOTTY: return " — this kernel does not know this ioctl";
        default: return "";
    }
}

class PyUffd {
public:
    PyUffd(uint64_t features, bool user_mode_only, bool nonblocking) : u_(features, user_mode_only, nonblocking) {}
    const Userfaultfd& u() const {
        if (!u_.is_open()) throw py::value_error("I/O operation on a closed Userfaultfd");
        return u_;
    }
    void close() { u_.close(); }
    bool closed() const { return !u_.is_open(); }

    long long check(const std::string& op, uint64_t start, uint64_t len, const IoResult& r) const {
        if (r.ok()) return r.done;
        const std::string msg = "UFFDIO_" + op + " of " + std::to_string(len) + " bytes at " + hexs(start) + " failed after " +
                                std::to_string(r.done) + " bytes: " + errno_name(r.err) + " (" + std::strerror(r.err) + ")" +
                                hint(op, r.err, u_, r.done);
        raise_python("UffdError", py::make_tuple(r.err, msg, op, r.done));
    }

    Userfaultfd u_;
};

// A native thread that touches memory (read, or write of a value) so that a test can resolve its fault from
// Python without ever touching the registered range from the resolving thread.
class Toucher {
public:
    Toucher(uint64_t address, bool write, uint64_t value) : addr_(address), write_(write), value_(value) {
        thread_ = std::thread([this] {
            auto* p = reinterpret_cast<volatile uint64_t*>(addr_);
            if (write_) *p = value_;
            result_ = *p;
            done_.store(true, std::memory_order_release);
        });
    }
    ~Toucher() {
        if (thread_.joinable()) thread_.detach();  // a never-resolved fault: leak the thread rather than hang
    }
    bool join(double timeout_s) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (!done_.load(std::memory_order_acquire)) {
            if (std::chrono::steady_clock::now() > until) return false;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        thread_.join();
        return true;
    }
    bool done() const { return done_.load(std::memory_order_acquire); }
    uint64_t result() const { return result_; }

private:
    uint64_t addr_;
    bool write_;
    uint64_t value_;
    uint64_t result_ = 0;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

const char* kind_name(EventKind k) {
    switch (k) {
        case EventKind::Pagefault: return "pagefault";
        case EventKind::Fork: return "fork";
        case EventKind::Remap: return "remap";
        case EventKind::Remove: return "remove";
        case EventKind::Unmap: return "unmap";
        default: return "unknown";
    }
}

}  // namespace

void register_uffd(py::module_& m) {
    m.def("page_size", &page_size, "The kernel's page size in bytes.");
    m.def("feature_names", [] {
        py::list l;
        for (const auto& f : feature_names()) l.append(py::make_tuple(f.bit, f.name));
        return l;
    }, "[(bit, short name)] of the UFFD_FEATURE_* bits this build knows.");
    m.def("ioctl_names", [] {
        py::list l;
        for (const auto& f : ioctl_names()) l.append(py::make_tuple(f.bit, f.name));
        return l;
    }, "[(bit, name)] of the ioctl bits reported by UFFDIO_API and UFFDIO_REGISTER.");
    m.def("probe", [](bool user_mode_only) {
        ProbeResult r;
        {
            py::gil_scoped_release rel;
            r = probe(user_mode_only);
        }
        py::dict d;
        d["features"] = r.features;
        d["ioctls"] = r.ioctls;
        d["opened_by"] = r.opened_by;
        d["user_mode_only"] = r.user_mode_only;
        return d;
    }, py::arg("user_mode_only") = true, "Two-step feature probe on a throwaway userfaultfd.");
    m.def("mremap_dontunmap_usable", [] {
        py::gil_scoped_release rel;
        return mremap_dontunmap_usable();
    });

    py::class_<PyUffd>(m, "Uffd", "A userfaultfd after the UFFDIO_API handshake. Ioctl methods release the GIL.")
        .def(py::init([](uint64_t features, bool umo, bool nb) {
                 py::gil_scoped_release rel;
                 return new PyUffd(features, umo, nb);
             }),
             py::arg("features"), py::arg("user_mode_only"), py::arg("nonblocking"))
        .def("fileno", [](const PyUffd& s) { return s.u().fd(); })
        .def_property_readonly("features", [](const PyUffd& s) { return s.u_.features(); })
        .def_property_readonly("available", [](const PyUffd& s) { return s.u_.available(); })
        .def_property_readonly("ioctls", [](const PyUffd& s) { return s.u_.ioctls(); })
        .def_property_readonly("opened_by", [](const PyUffd& s) { return s.u_.opened_by(); })
        .def_property_readonly("closed", &PyUffd::closed)
        .def("close", &PyUffd::close)
        .def("register", [](const PyUffd& s, uint64_t start, uint64_t len, uint64_t mode) {
            uint64_t io = 0;
            IoResult r;
            {
                py::gil_scoped_release rel;
                r = s.u().register_range(start, len, mode, &io);
            }
            if (!r.ok()) {
                std::string why = r.err == EINVAL ? " — unaligned or empty range, a mode this kernel does not support, or memory that cannot be registered this way" :
                                  r.err == EBUSY ? " — the range is already registered with another userfaultfd" :
                                  r.err == ENOMEM ? " — the range is not fully mapped" : "";
                raise_python("UffdError", py::make_tuple(r.err, "UFFDIO_REGISTER of " + std::to_string(len) + " bytes at " +
                             hexs(start) + " failed: " + errno_name(r.err) + " (" + std::strerror(r.err) + ")" + why,
                             "REGISTER", 0));
            }
            return io;
        }, py::arg("start"), py::arg("length"), py::arg("mode"))
        .def("unregister", [](const PyUffd& s, uint64_t start, uint64_t len) {
            IoResult r;
            {
                py::gil_scoped_release rel;
                r = s.u().unregister_range(start, len);
            }
            s.check("UNREGISTER", start, len, r);
        })
#define INSTALL(pyname, OP, call)                                                                   \
    .def(pyname, [](const PyUffd& s, uint64_t a, uint64_t b, uint64_t len, uint64_t mode) {         \
        IoResult r;                                                                                   \
        {                                                                                             \
            py::gil_scoped_release rel;                                                               \
            r = s.u().call(a, b, len, mode);                                                          \
        }                                                                                             \
        return s.check(OP, a, len, r);                                                                \
    })
        INSTALL("copy", "COPY", copy)
        INSTALL("move", "MOVE", move)
#undef INSTALL
#define RANGE_OP(pyname, OP, call)                                                        \
    .def(pyname, [](const PyUffd& s, uint64_t start, uint64_t len, uint64_t mode) {       \
        IoResult r;                                                                         \
        {                                                                                   \
            py::gil_scoped_release rel;                                                     \
            r = s.u().call(start, len, mode);                                               \
        }                                                                                   \
        return s.check(OP, start, len, r);                                                  \
    })
        RANGE_OP("zeropage", "ZEROPAGE", zeropage)
        RANGE_OP("continue_", "CONTINUE", continue_)
        RANGE_OP("poison", "POISON", poison)
        RANGE_OP("writeprotect", "WRITEPROTECT", writeprotect)
#undef RANGE_OP
        .def("wake", [](const PyUffd& s, uint64_t start, uint64_t len) {
            IoResult r;
            {
                py::gil_scoped_release rel;
                r = s.u().wake(start, len);
            }
            s.check("WAKE", start, len, r);
        })
        .def("read_events", [](const PyUffd& s, size_t max_events) {
            std::vector<Event> ev(max_events ? max_events : 1);
            long n;
            {
                py::gil_scoped_release rel;
                n = s.u().read_events(ev.data(), max_events);
            }
            if (n < 0) {
                const int e = static_cast<int>(-n);
                raise_python("UffdError", py::make_tuple(e, "read(userfaultfd) failed: " + errno_name(e) + " (" +
                                                                std::strerror(e) + ")", "READ", 0));
            }
            py::list out;
            for (long i = 0; i < n; ++i) {
                const Event& e = ev[static_cast<size_t>(i)];
                out.append(py::make_tuple(kind_name(e.kind), e.address, e.flags, e.thread_id, e.arg, e.len));
            }
            return out;
        }, py::arg("max_events"));

    py::class_<Toucher>(m, "Toucher", "A native thread that reads (or writes then reads) one 8-byte word.")
        .def(py::init<uint64_t, bool, uint64_t>(), py::arg("address"), py::arg("write") = false, py::arg("value") = 0)
        .def("join", &Toucher::join, py::arg("timeout"), py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("done", &Toucher::done)
        .def_property_readonly("result", &Toucher::result);
}
