// The userfaultfd core: open, feature probe and handshake, every ioctl with the result protocol done right,
// and event reading. Ioctl methods are async-signal-safe (no allocation, no locks, no exceptions): they return
// IoResult so that signal handlers and the GC thread can call them directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compactor/uffd_abi.hpp"

namespace compactor {

// Outcome of one logical userfaultfd operation: bytes completed and the final errno (0 = success).
// Partial progress (EAGAIN with bytes > 0) has already been continued; err == EAGAIN with done == 0 means a
// pending non-cooperative event must be read first.
struct IoResult {
    long long done = 0;
    int err = 0;
    bool ok() const { return err == 0; }
};

struct FeatureName {
    uint64_t bit;
    const char* name;
};
// Short names of UFFD_FEATURE_* bits ("move", "sigbus", "thread_id", "wp", "poison", ...).
const std::vector<FeatureName>& feature_names();
// Short names of ioctl bits as the kernel reports them in uffdio_api.ioctls / uffdio_register.ioctls.
const std::vector<FeatureName>& ioctl_names();

struct ProbeResult {
    uint64_t features = 0;   // what the kernel offers this process
    uint64_t ioctls = 0;     // fd-level ioctls from the handshake
    std::string opened_by;   // "syscall" or "/dev/userfaultfd"
    bool user_mode_only = true;
};

enum class EventKind { Pagefault, Fork, Remap, Remove, Unmap, Unknown };

struct Event {
    EventKind kind = EventKind::Unknown;
    uint64_t address = 0;  // pagefault: faulting address; remap: from; remove/unmap: start
    uint64_t flags = 0;    // pagefault flags (UFFD_PAGEFAULT_FLAG_*)
    uint32_t thread_id = 0;
    uint64_t arg = 0;      // fork: child uffd; remap: to; remove/unmap: end
    uint64_t len = 0;      // remap: len
};

// Opens a userfaultfd: the syscall first, then /dev/userfaultfd on EPERM/ENOSYS/EACCES. Throws UffdUnavailable
// naming both attempts and the remedies when neither works. Returns the fd; `opened_by` says which door worked.
int open_userfaultfd(bool user_mode_only, bool nonblocking, std::string* opened_by);

// Two-step probe: a throwaway fd, UFFDIO_API with features = 0, then close. Throws UffdUnavailable only when
// userfaultfd cannot be opened at all.
ProbeResult probe(bool user_mode_only = true);

class Userfaultfd {
public:
    Userfaultfd() = default;
    // Opens and performs the handshake asking for exactly `features`. Throws UffdUnavailable, or UffdError("API")
    // naming the features the kernel does not offer.
    Userfaultfd(uint64_t features, bool user_mode_only = true, bool nonblocking = true);
    ~Userfaultfd();
    Userfaultfd(const Userfaultfd&) = delete;
    Userfaultfd& operator=(const Userfaultfd&) = delete;
    Userfaultfd(Userfaultfd&& o) noexcept;
    Userfaultfd& operator=(Userfaultfd&& o) noexcept;

    int fd() const { return fd_; }
    bool is_open() const { return fd_ >= 0; }
    uint64_t features() const { return features_; }      // negotiated (asked for and granted)
    uint64_t available() const { return available_; }    // offered by the kernel
    uint64_t ioctls() const { return ioctls_; }
    const std::string& opened_by() const { return opened_by_; }
    void close();

    // Range registration. mode: UFFDIO_REGISTER_MODE_* bits. On success *range_ioctls holds the allowed ioctls.
    IoResult register_range(uint64_t start, uint64_t len, uint64_t mode, uint64_t* range_ioctls) const;
    IoResult unregister_range(uint64_t start, uint64_t len) const;

    // The installing ioctls: continue automatically over partial progress, report the total.
    IoResult copy(uint64_t dst, uint64_t src, uint64_t len, uint64_t mode) const;
    IoResult move(uint64_t dst, uint64_t src, uint64_t len, uint64_t mode) const;
    IoResult zeropage(uint64_t start, uint64_t len, uint64_t mode) const;
    IoResult continue_(uint64_t start, uint64_t len, uint64_t mode) const;
    IoResult poison(uint64_t start, uint64_t len, uint64_t mode) const;
    IoResult wake(uint64_t start, uint64_t len) const;
    IoResult writeprotect(uint64_t start, uint64_t len, uint64_t mode) const;

    // Nonblocking batched read. Returns the number of events stored (0 when none pending), or -errno.
    long read_events(Event* out, size_t max_events) const;

private:
    int fd_ = -1;
    uint64_t features_ = 0;
    uint64_t available_ = 0;
    uint64_t ioctls_ = 0;
    std::string opened_by_;
};

}  // namespace compactor
