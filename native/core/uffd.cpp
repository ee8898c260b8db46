#include "compactor/uffd.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compactor/errors.hpp"

namespace compactor {

const std::vector<FeatureName>& feature_names() {
    static const std::vector<FeatureName> names = {
        {UFFD_FEATURE_PAGEFAULT_FLAG_WP, "wp"},
        {UFFD_FEATURE_EVENT_FORK, "event_fork"},
        {UFFD_FEATURE_EVENT_REMAP, "event_remap"},
        {UFFD_FEATURE_EVENT_REMOVE, "event_remove"},
        {UFFD_FEATURE_MISSING_HUGETLBFS, "missing_hugetlbfs"},
        {UFFD_FEATURE_MISSING_SHMEM, "missing_shmem"},
        {UFFD_FEATURE_EVENT_UNMAP, "event_unmap"},
        {UFFD_FEATURE_SIGBUS, "sigbus"},
        {UFFD_FEATURE_THREAD_ID, "thread_id"},
        {UFFD_FEATURE_MINOR_HUGETLBFS, "minor_hugetlbfs"},
        {UFFD_FEATURE_MINOR_SHMEM, "minor_shmem"},
        {UFFD_FEATURE_EXACT_ADDRESS, "exact_address"},
        {UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "wp_hugetlbfs_shmem"},
        {UFFD_FEATURE_WP_UNPOPULATED, "wp_unpopulated"},
        {UFFD_FEATURE_POISON, "poison"},
        {UFFD_FEATURE_WP_ASYNC, "wp_async"},
        {UFFD_FEATURE_MOVE, "move"},
    };
    return names;
}

const std::vector<FeatureName>& ioctl_names() {
    static const std::vector<FeatureName> names = {
        {1ULL << _UFFDIO_REGISTER, "register"},
        {1ULL << _UFFDIO_UNREGISTER, "unregister"},
        {1ULL << _UFFDIO_WAKE, "wake"},
        {1ULL << _UFFDIO_COPY, "copy"},
        {1ULL << _UFFDIO_ZEROPAGE, "zeropage"},
        {1ULL << _UFFDIO_MOVE, "move"},
        {1ULL << _UFFDIO_WRITEPROTECT, "writeprotect"},
        {1ULL << _UFFDIO_CONTINUE, "continue"},
        {1ULL << _UFFDIO_POISON, "poison"},
        {1ULL << _UFFDIO_API, "api"},
    };
    return names;
}

int open_userfaultfd(bool user_mode_only, bool nonblocking, std::string* opened_by) {
    int flags = O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0) | (user_mode_only ? UFFD_USER_MODE_ONLY : 0);
    int fd = static_cast<int>(syscall(__NR_userfaultfd, flags));
    if (fd >= 0) {
        if (opened_by) *opened_by = "syscall";
        return fd;
    }
    const int sys_err = errno;
    if (sys_err != EPERM && sys_err != ENOSYS && sys_err != EACCES) {
        throw UffdUnavailable(sys_err, sys_message("userfaultfd(2)", sys_err));
    }
    int dev_err = 0;
    int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, flags);
        dev_err = fd < 0 ? errno : 0;
        ::close(dev);
        if (fd >= 0) {
            if (opened_by) *opened_by = "/dev/userfaultfd";
            return fd;
        }
    } else {
        dev_err = errno;
    }
    std::string msg = "userfaultfd is unavailable: " + sys_message("userfaultfd(2) syscall", sys_err) + "; " +
                      sys_message("/dev/userfaultfd (USERFAULTFD_IOC_NEW)", dev_err) + ". Remedies: ";
    if (!user_mode_only) {
        msg += "open with user_mode_only=True (UFFD_USER_MODE_ONLY, Linux >= 5.11), which unprivileged users need; ";
    }
    msg += "or set sysctl vm.unprivileged_userfaultfd=1; or grant read-write access to /dev/userfaultfd "
           "(e.g. chmod 0666 or a group ACL); or run as root / with CAP_SYS_PTRACE; the kernel needs "
           "CONFIG_USERFAULTFD=y (and Android SELinux must allow userfaultfd for this domain).";
    throw UffdUnavailable(sys_err == ENOSYS ? ENOSYS : sys_err, msg);
}

ProbeResult probe(bool user_mode_only) {
    ProbeResult r;
    r.user_mode_only = user_mode_only;
    int fd = open_userfaultfd(user_mode_only, true, &r.opened_by);
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = 0;
    if (::ioctl(fd, UFFDIO_API, &api) != 0) {
        int e = errno;
        ::close(fd);
        throw UffdUnavailable(e, sys_message("UFFDIO_API handshake on a probe fd", e));
    }
    ::close(fd);
    r.features = api.features;
    r.ioctls = api.ioctls;
    return r;
}

static std::string feature_list(uint64_t bits) {
    std::string s;
    for (const auto& f : feature_names()) {
        if (bits & f.bit) {
            if (!s.empty()) s += ", ";
            s += f.name;
        }
    }
    uint64_t known = 0;
    for (const auto& f : feature_names()) known |= f.bit;
    if (bits & ~known) {
        if (!s.empty()) s += ", ";
        s += "unknown bits 0x" + [](uint64_t v) {
            char b[32];
            snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
            return std::string(b);
        }(bits & ~known);
    }
    return s;
}

Userfaultfd::Userfaultfd(uint64_t features, bool user_mode_only, bool nonblocking) {
    ProbeResult pr = probe(user_mode_only);
    available_ = pr.features;
    if (features & ~available_) {
        throw UffdError(EINVAL, "API", 0,
                        "UFFDIO_API: this kernel does not offer the requested feature(s): " +
                            feature_list(features & ~available_) + " (offered: " + feature_list(available_) + ")");
    }
    fd_ = open_userfaultfd(user_mode_only, nonblocking, &opened_by_);
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = features;
    if (::ioctl(fd_, UFFDIO_API, &api) != 0) {
        int e = errno;
        ::close(fd_);
        fd_ = -1;
        throw UffdError(e, "API", 0, sys_message("UFFDIO_API handshake asking for {" + feature_list(features) + "}", e));
    }
    features_ = features;
    ioctls_ = api.ioctls;
}

Userfaultfd::~Userfaultfd() { close(); }

Userfaultfd::Userfaultfd(Userfaultfd&& o) noexcept
    : fd_(o.fd_), features_(o.features_), available_(o.available_), ioctls_(o.ioctls_), opened_by_(std::move(o.opened_by_)) {
    o.fd_ = -1;
}

Userfaultfd& Userfaultfd::operator=(Userfaultfd&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = o.fd_;
        features_ = o.features_;
        available_ = o.available_;
        ioctls_ = o.ioctls_;
        opened_by_ = std::move(o.opened_by_);
        o.fd_ = -1;
    }
    return *this;
}

void Userfaultfd::close() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

IoResult Userfaultfd::register_range(uint64_t start, uint64_t len, uint64_t mode, uint64_t* range_ioctls) const {
    uffdio_register reg{};
    reg.range.start = start;
    reg.range.len = len;
    reg.mode = mode;
    if (::ioctl(fd_, UFFDIO_REGISTER, &reg) != 0) return {0, errno};
    if (range_ioctls) *range_ioctls = reg.ioctls;
    return {static_cast<long long>(len), 0};
}

IoResult Userfaultfd::unregister_range(uint64_t start, uint64_t len) const {
    uffdio_range r{start, len};
    if (::ioctl(fd_, UFFDIO_UNREGISTER, &r) != 0) return {0, errno};
    return {static_cast<long long>(len), 0};
}

// The result protocol shared by COPY, MOVE, ZEROPAGE, CONTINUE and POISON: the progress field is pre-set to 0
// (the kernel does not write it on EINVAL), the error comes from errno, EAGAIN with positive progress is
// continued from where the kernel stopped, and EAGAIN with no progress is returned (a pending event).
template <typename Arg, typename Fill>
static IoResult installing_ioctl(int fd, unsigned long request, uint64_t len, Fill fill) {
    long long total = 0;
    for (;;) {
        Arg arg{};
        __s64* progress = fill(arg, static_cast<uint64_t>(total));
        *progress = 0;
        if (::ioctl(fd, request, &arg) == 0) {
            total += *progress > 0 ? *progress : static_cast<long long>(len) - total;
            return {total, 0};
        }
        int e = errno;
        if (e == EAGAIN && *progress > 0) {
            total += *progress;
            if (static_cast<uint64_t>(total) >= len) return {total, 0};
            continue;
        }
        return {total, e};
    }
}

// COPY and MOVE: dst, src, len, mode and a progress field.
template <typename Arg>
static IoResult two_range_ioctl(int fd, unsigned long request, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
                                __s64 Arg::*progress) {
    return installing_ioctl<Arg>(fd, request, len, [&](Arg& a, uint64_t off) {
        a.dst = dst + off;
        a.src = src + off;
        a.len = len - off;
        a.mode = mode;
        return &(a.*progress);
    });
}

// ZEROPAGE, CONTINUE and POISON: a range, mode and a progress field.
template <typename Arg>
static IoResult one_range_ioctl(int fd, unsigned long request, uint64_t start, uint64_t len, uint64_t mode,
                                __s64 Arg::*progress) {
    return installing_ioctl<Arg>(fd, request, len, [&](Arg& a, uint64_t off) {
        a.range.start = start + off;
        a.range.len = len - off;
        a.mode = mode;
        return &(a.*progress);
    });
}

IoResult Userfaultfd::copy(uint64_t dst, uint64_t src, uint64_t len, uint64_t mode) const {
    return two_range_ioctl(fd_, UFFDIO_COPY, dst, src, len, mode, &uffdio_copy::copy);
}

IoResult Userfaultfd::move(uint64_t dst, uint64_t src, uint64_t len, uint64_t mode) const {
    return two_range_ioctl(fd_, UFFDIO_MOVE, dst, src, len, mode, &uffdio_move::move);
}

IoResult Userfaultfd::zeropage(uint64_t start, uint64_t len, uint64_t mode) const {
    return one_range_ioctl(fd_, UFFDIO_ZEROPAGE, start, len, mode, &uffdio_zeropage::zeropage);
}

IoResult Userfaultfd::continue_(uint64_t start, uint64_t len, uint64_t mode) const {
    return one_range_ioctl(fd_, UFFDIO_CONTINUE, start, len, mode, &uffdio_continue::mapped);
}

IoResult Userfaultfd::poison(uint64_t start, uint64_t len, uint64_t mode) const {
    return one_range_ioctl(fd_, UFFDIO_POISON, start, len, mode, &uffdio_poison::updated);
}

IoResult Userfaultfd::wake(uint64_t start, uint64_t len) const {
    uffdio_range r{start, len};
    if (::ioctl(fd_, UFFDIO_WAKE, &r) != 0) return {0, errno};
    return {static_cast<long long>(len), 0};
}

IoResult Userfaultfd::writeprotect(uint64_t start, uint64_t len, uint64_t mode) const {
    uffdio_writeprotect w{};
    w.range.start = start;
    w.range.len = len;
    w.mode = mode;
    if (::ioctl(fd_, UFFDIO_WRITEPROTECT, &w) != 0) return {0, errno};
    return {static_cast<long long>(len), 0};
}

long Userfaultfd::read_events(Event* out, size_t max_events) const {
    constexpr size_t kBatch = 64;
    uffd_msg msgs[kBatch];
    size_t want = max_events < kBatch ? max_events : kBatch;
    if (want == 0) return 0;
    ssize_t n = ::read(fd_, msgs, want * sizeof(uffd_msg));
    if (n < 0) {
        int e = errno;
        return e == EAGAIN ? 0 : -e;
    }
    size_t count = static_cast<size_t>(n) / sizeof(uffd_msg);
    for (size_t i = 0; i < count; ++i) {
        const uffd_msg& m = msgs[i];
        Event ev;
        switch (m.event) {
            case UFFD_EVENT_PAGEFAULT:
                ev.kind = EventKind::Pagefault;
                ev.address = m.arg.pagefault.address;
                ev.flags = m.arg.pagefault.flags;
                ev.thread_id = m.arg.pagefault.feat.ptid;
                break;
            case UFFD_EVENT_FORK:
                ev.kind = EventKind::Fork;
                ev.arg = m.arg.fork.ufd;
                break;
            case UFFD_EVENT_REMAP:
                ev.kind = EventKind::Remap;
                ev.address = m.arg.remap.from;
                ev.arg = m.arg.remap.to;
                ev.len = m.arg.remap.len;
                break;
            case UFFD_EVENT_REMOVE:
                ev.kind = EventKind::Remove;
                ev.address = m.arg.remove.start;
                ev.arg = m.arg.remove.end;
                break;
            case UFFD_EVENT_UNMAP:
                ev.kind = EventKind::Unmap;
                ev.address = m.arg.remove.start;
                ev.arg = m.arg.remove.end;
                break;
            default:
                ev.kind = EventKind::Unknown;
        }
        out[i] = ev;
    }
    return static_cast<long>(count);
}

}  // namespace compactor
