#include "compactor/errors.hpp"

#include <cerrno>
#include <cstring>

namespace compactor {

std::string errno_name(int err) {
    switch (err) {
        case 0: return "OK";
        case EPERM: return "EPERM";
        case ENOENT: return "ENOENT";
        case EINTR: return "EINTR";
        case EIO: return "EIO";
        case EBADF: return "EBADF";
        case EAGAIN: return "EAGAIN";
        case ENOMEM: return "ENOMEM";
        case EACCES: return "EACCES";
        case EFAULT: return "EFAULT";
        case EBUSY: return "EBUSY";
        case EEXIST: return "EEXIST";
        case ENODEV: return "ENODEV";
        case EINVAL: return "EINVAL";
        case ENOSPC: return "ENOSPC";
        case ERANGE: return "ERANGE";
        case ENOSYS: return "ENOSYS";
        case ENOTTY: return "ENOTTY";
        case ESRCH: return "ESRCH";
        case ENOTSUP: return "ENOTSUP";
        case ETIMEDOUT: return "ETIMEDOUT";
        default: return "errno " + std::to_string(err);
    }
}

std::string sys_message(const std::string& what, int err) {
    return what + " failed: " + errno_name(err) + " (" + std::strerror(err) + ")";
}

}  // namespace compactor
