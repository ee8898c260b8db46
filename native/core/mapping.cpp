#include "compactor/mapping.hpp"

#include <cerrno>
#include <string>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compactor/errors.hpp"
#include "compactor/uffd_abi.hpp"

namespace compactor {

size_t page_size() {
    static const size_t ps = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    return ps;
}

Mapping::Mapping(size_t length, bool noreserve) {
    if (length == 0) throw SysError(EINVAL, "mapping length must be positive");
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0);
    void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        throw SysError(e, sys_message("mmap of " + std::to_string(length) + " bytes", e));
    }
    addr_ = p;
    length_ = length;
}

Mapping Mapping::adopt(void* addr, size_t length) {
    Mapping m;
    m.addr_ = addr;
    m.length_ = length;
    return m;
}

Mapping::~Mapping() { unmap(); }

Mapping::Mapping(Mapping&& o) noexcept : addr_(o.addr_), length_(o.length_) {
    o.addr_ = nullptr;
    o.length_ = 0;
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
    if (this != &o) {
        unmap();
        addr_ = o.addr_;
        length_ = o.length_;
        o.addr_ = nullptr;
        o.length_ = 0;
    }
    return *this;
}

int Mapping::unmap() {
    int err = 0;
    if (addr_) {
        if (::munmap(addr_, length_) != 0) err = errno;
        addr_ = nullptr;
        length_ = 0;
    }
    return err;
}

void Mapping::advise(size_t offset, size_t len, int advice) const {
    if (offset > length_ || len > length_ - offset) throw SysError(EINVAL, "madvise range lies outside the mapping");
    if (len == 0) return;
    if (::madvise(data() + offset, len, advice) != 0) {
        int e = errno;
        throw SysError(e, sys_message("madvise(" + std::to_string(advice) + ")", e));
    }
}

void Mapping::dontfork() const { advise(0, length_, MADV_DONTFORK); }
void Mapping::dontneed(size_t offset, size_t len) const { advise(offset, len, MADV_DONTNEED); }
void Mapping::hugepage(bool enable) const { advise(0, length_, enable ? MADV_HUGEPAGE : MADV_NOHUGEPAGE); }

Mapping Mapping::remap_dontunmap() const {
    // The raw syscall: glibc's variadic wrapper passes an indeterminate new_address with MREMAP_DONTUNMAP on
    // some versions, which recent kernels reject with EINVAL.
    void* p = reinterpret_cast<void*>(::syscall(SYS_mremap, addr_, length_, length_, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0UL));
    if (p == MAP_FAILED) {
        int e = errno;
        throw SysError(e, sys_message("mremap(MREMAP_DONTUNMAP)", e) +
                              (e == EINVAL ? " — this kernel may lack MREMAP_DONTUNMAP for this mapping (Linux >= 5.7)" : ""));
    }
    return adopt(p, length_);
}

void Mapping::remap_dontunmap_to(uint64_t target) const {
    void* p = reinterpret_cast<void*>(::syscall(SYS_mremap, addr_, length_, length_,
                                                 MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, target));
    if (p == MAP_FAILED) {
        int e = errno;
        throw SysError(e, sys_message("mremap(MREMAP_FIXED|MREMAP_DONTUNMAP)", e));
    }
}

bool mremap_dontunmap_usable() {
    try {
        Mapping m(page_size());
        m.data()[0] = 1;
        Mapping moved = m.remap_dontunmap();
        return moved.data()[0] == 1 && m.data()[0] == 0;
    } catch (const SysError&) {
        return false;
    }
}

}  // namespace compactor
