// Anonymous private mappings as RAII objects.
#pragma once

#include <cstddef>
#include <cstdint>

namespace compactor {

size_t page_size();  // the kernel's page size, read at run time

class Mapping {
public:
    Mapping() = default;
    // mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS [|MAP_NORESERVE]). Throws SysError.
    explicit Mapping(size_t length, bool noreserve = false);
    // Adopts an existing mapping (e.g. the result of mremap); unmapped on destruction.
    static Mapping adopt(void* addr, size_t length);
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    Mapping(Mapping&& o) noexcept;
    Mapping& operator=(Mapping&& o) noexcept;

    uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
    uint64_t address() const { return reinterpret_cast<uint64_t>(addr_); }
    size_t length() const { return length_; }
    bool valid() const { return addr_ != nullptr; }
    int unmap();  // 0, or munmap's errno (the mapping is forgotten either way)

    // madvise over [offset, offset+len); throws SysError.
    void advise(size_t offset, size_t len, int advice) const;
    void dontfork() const;
    void dontneed(size_t offset, size_t len) const;
    void hugepage(bool enable) const;

    // mremap(MREMAP_MAYMOVE|MREMAP_DONTUNMAP): the pages move to a new mapping which is returned; this range stays
    // mapped and empty (missing faults from now on). Throws SysError (EINVAL on kernels without MREMAP_DONTUNMAP).
    Mapping remap_dontunmap() const;
    // Same, onto a fixed target address (MREMAP_FIXED) inside an existing reservation of equal length.
    void remap_dontunmap_to(uint64_t target) const;

private:
    void* addr_ = nullptr;
    size_t length_ = 0;
};

// True when mremap(MREMAP_DONTUNMAP) works on a private anonymous mapping here (Linux >= 5.7).
bool mremap_dontunmap_usable();

}  // namespace compactor
