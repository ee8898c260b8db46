// libFuzzer target: the HPROF parser on arbitrary bytes must either return or throw HprofError — never crash,
// hang, read out of bounds or allocate from a lying length (ASan's allocation limit catches that).
#include <cstddef>
#include <cstdint>

#include "compactor/hprof.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        compactor::HprofDump d = compactor::parse_hprof(data, size);
        if (d.ref_start.size() != d.obj_id.size() + 1) __builtin_trap();
    } catch (const compactor::HprofError&) {
    }
    return 0;
}
