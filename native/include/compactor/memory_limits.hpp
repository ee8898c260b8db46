// The memory this process may still use, as compactor/memory.py defines it: MemAvailable, the memory cgroup
// limits of this process and its ancestors (v2 memory.max - memory.current, v1 memory.limit_in_bytes -
// memory.usage_in_bytes), RLIMIT_AS minus VmSize, COMPACTOR_MEMORY_LIMIT. Used by the runner before it maps a heap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace compactor {

struct MemoryLimit {
    std::string name;    // "MemAvailable", "cgroup memory.max", "RLIMIT_AS", "COMPACTOR_MEMORY_LIMIT"
    std::string source;  // where it was read, with the numbers
    uint64_t available;  // bytes this process may still use under it
    bool address_space;  // RLIMIT_AS bounds mappings; the others resident memory
};

std::vector<MemoryLimit> memory_limits();

// "" when `need_memory` resident bytes and `need_address_space` mapped bytes fit under every limit; otherwise
// the message naming the limit that falls shortest: "<what> needs about N MiB of memory (<parts>); this process may
// use M MiB more under <limit> (<source>): use a smaller heap or raise the limit".
std::string memory_shortfall(uint64_t need_memory, uint64_t need_address_space, const std::string& what,
                             const std::string& parts);

}  // namespace compactor
