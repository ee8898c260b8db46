// The memory this process may still use (the one definition: the runner's check and, bound, compactor.memory):
// MemAvailable, the memory cgroup limits of this process and its ancestors (v2 memory.max - memory.current, v1
// memory.limit_in_bytes - memory.usage_in_bytes), RLIMIT_AS minus VmSize, COMPACTOR_MEMORY_LIMIT.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace compactor {

struct MemoryLimit {
    std::string name;    // "MemAvailable", "cgroup memory.max", "RLIMIT_AS", "COMPACTOR_MEMORY_LIMIT"
    std::string source;  // where it was read, with the numbers
    uint64_t available;  // bytes this process may still use under it
    bool address_space;  // RLIMIT_AS bounds mappings; the others resident memory
};

std::vector<MemoryLimit> memory_limits();

// This process's memory cgroup directory and its ancestors up to the hierarchy's root, innermost first, as
// ("1" or "2", directory): cgroup v1's memory controller where it is mounted, else the cgroup2 hierarchy.
std::vector<std::pair<std::string, std::string>> cgroup_dirs();

// One part of what a collection maps: resident bytes and bytes of address space.
struct NeedPart {
    std::string what;
    uint64_t memory, address_space;
};

// What one collection of a `heap`-byte heap maps of its own (the one definition: the runner's check and Python's
// compactor.memory.collection_need use it): the moving space; for a concurrent strategy the from-space (one heap
// of address space; to-space pages installed while it still holds its pages: at most `live` resident); buffers,
// latency samples and write logs (32 MiB + 8 MiB per mutator) and a stack per thread (GC, fault thread, the
// signal source, mutators; `stack` bytes each) of address space; with trace_events, a trace buffer per thread
// (collector, GC, fault thread, mutators).
std::vector<NeedPart> collection_need(uint64_t heap, uint64_t live, bool concurrent, unsigned mutators,
                                      uint64_t trace_events, uint64_t stack);

// The address space glibc reserves for a new thread's stack: RLIMIT_STACK's soft limit, 8 MiB when unlimited.
uint64_t thread_stack_bytes();

// The limit that falls shortest of `need_memory` resident bytes and `need_address_space` mapped bytes, the
// need it is compared with, and the message naming it: "<what> needs about N MiB of memory (<parts>); this
// process may use M MiB more under <limit> (<source>): <remedy>". Empty when everything fits.
struct Shortfall {
    MemoryLimit limit;
    uint64_t need = 0;
    std::string message;
};
std::optional<Shortfall> memory_shortfall(uint64_t need_memory, uint64_t need_address_space, const std::string& what,
                                          const std::string& parts,
                                          const std::string& remedy = "use a smaller heap or raise the limit");

}  // namespace compactor
