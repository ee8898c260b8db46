// Exceptions thrown by the core outside the fault path (setup, probing, plan loading, verification).
// The fault path never throws: it returns errno values (see uffd.hpp IoResult).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace compactor {

// userfaultfd could not be opened at all; the message names every attempt and the remedies.
struct UffdUnavailable : std::runtime_error {
    int err;
    UffdUnavailable(int e, const std::string& msg) : std::runtime_error(msg), err(e) {}
};

// A userfaultfd ioctl failed. `done` is the number of bytes completed before the failure.
struct UffdError : std::runtime_error {
    int err;
    std::string op;
    long long done;
    UffdError(int e, std::string o, long long d, const std::string& msg)
        : std::runtime_error(msg), err(e), op(std::move(o)), done(d) {}
};

// A system call outside userfaultfd failed (mmap, madvise, mremap, ...).
struct SysError : std::runtime_error {
    int err;
    SysError(int e, const std::string& msg) : std::runtime_error(msg), err(e) {}
};

// A plan file or plan array is malformed: names the field and what was expected.
struct PlanError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Verification found the heap differs from what the plan promises: names the first differing object.
struct HeapCorruption : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The concurrent phase made no progress for longer than the watchdog allows.
struct WatchdogTimeout : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string errno_name(int err);                        // "EEXIST", ...
std::string sys_message(const std::string& what, int err);  // "mmap(...) failed: ENOMEM (Cannot allocate memory)"

}  // namespace compactor
