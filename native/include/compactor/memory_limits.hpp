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

// "" when `need_memory` resident bytes and `need_address_space` mapped bytes fit under every limit; otherwise
// the message naming the limit that falls shortest: "<what> needs about N MiB of memory (<parts>); this process may
// use M MiB more under <limit> (<source>): use a smaller heap or raise the limit".
std::string memory_shortfall(uint64_t need_memory, uint64_t need_address_space, const std::string& what,
                             const std::string& parts);

}  // namespace compactor
