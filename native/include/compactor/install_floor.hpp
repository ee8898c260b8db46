// The per-page install floor: what memcpy, COPY, MOVE and ZEROPAGE cost per page on this kernel, measured
// inside the core (no interpreter in the loop), with raw-ioctl loops beside the core's wrappers to show the
// wrappers' own overhead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace compactor {

struct FloorMeasurement {
    std::string name;        // e.g. "move_batch_512"
    std::string description;
    uint64_t pages_per_call = 0;
    std::vector<double> ns_per_page;  // one value per repetition
    double median_ns = 0;
};

// Measures every floor entry over `pages` pages, `repetitions` times each (interleaved). Needs userfaultfd;
// MOVE entries are skipped (not listed) when the kernel lacks UFFD_FEATURE_MOVE.
std::vector<FloorMeasurement> measure_install_floor(uint64_t pages, unsigned repetitions);

// Sets each row's median_ns from its ns_per_page.
void set_medians(std::vector<FloorMeasurement>& rows);

}  // namespace compactor
