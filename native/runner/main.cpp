// compactor-runner: executes a plan file with the same core the Python package uses (no Python, no planner).
// Prints one JSON object on stdout; errors go to stderr with a non-zero exit status.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/utsname.h>
#include <unistd.h>
#include <vector>
#include <cerrno>

#include "compactor/collector.hpp"
#include "compactor/compaction_floor.hpp"
#include "compactor/errors.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/install_floor.hpp"
#include "compactor/mapping.hpp"
#include "compactor/plan_file.hpp"
#include "compactor/result_json.hpp"
#include "compactor/uffd.hpp"
#include "compactor/verify.hpp"

using namespace compactor;

namespace {

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: compactor-runner --probe\n"
                 "       compactor-runner --floor [--floor-pages N] [--repeat N]\n"
                 "       compactor-runner PLAN_FILE --compaction-floor [--repeat N]\n"
                 "       compactor-runner PLAN_FILE [--strategy stw|copy|move|move-alloc|hybrid] [--faults sigbus|thread]\n"
                 "                        [--mutators N] [--batch N] [--move-min-run N] [--access random|sequential|hot-set]\n"
                 "                        [--backoff art|futex] [--claim-ahead] [--gc-cpu CPU] [--mutator-cpus CPU,CPU,...]\n"
                 "                        [--release-chunk BYTES] [--write-fraction F] [--swapped F] [--repeat N] [--seed N]\n"
                 "                        [--watchdog SECONDS]\n");
}

// The device-tree model or compatible string (an emulated "linux,dummy-virt" machine shows here), or "".
std::string machine_description() {
    for (const char* path : {"/proc/device-tree/model", "/proc/device-tree/compatible"}) {
        FILE* f = std::fopen(path, "rb");
        if (!f) continue;
        char buf[256];
        const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        std::string s(buf, n);
        for (char& c : s)
            if (c == '\0') c = ' ';
        while (!s.empty() && s.back() == ' ') s.pop_back();
        if (!s.empty()) return s;
    }
    return "";
}

std::string probe_json() {
    utsname u{};
    uname(&u);
    std::string s = "{\"kernel\": " + json_escape(u.release) + ", \"arch\": " + json_escape(u.machine) +
                    ", \"page_size\": " + std::to_string(page_size()) + ", \"machine\": " +
                    json_escape(machine_description()) + ", \"uid\": " + std::to_string(getuid());
    try {
        ProbeResult r = probe(true);
        std::string names;
        for (const auto& f : feature_names())
            if (r.features & f.bit) names += (names.empty() ? "" : ", ") + json_escape(f.name);
        s += ", \"userfaultfd\": true, \"opened_by\": " + json_escape(r.opened_by) + ", \"features\": [" + names +
             "], \"feature_bits\": " + std::to_string(r.features) + ", \"move\": " +
             ((r.features & UFFD_FEATURE_MOVE) ? "true" : "false") + ", \"sigbus\": " +
             ((r.features & UFFD_FEATURE_SIGBUS) ? "true" : "false");
    } catch (const UffdUnavailable& e) {
        s += ", \"userfaultfd\": false, \"error\": " + json_escape(e.what()) + ", \"features\": [], \"move\": false, \"sigbus\": false";
    }
    s += std::string(", \"mremap_dontunmap\": ") + (mremap_dontunmap_usable() ? "true" : "false") + "}";
    return s;
}

// A non-negative integer no larger than `max` (values that do not fit the option are refused, not wrapped).
unsigned long parse_uint(const char* flag, const char* v, unsigned long max = UINT_MAX) {
    char* end = nullptr;
    errno = 0;
    unsigned long x = std::strtoul(v, &end, 10);
    if (errno || !end || *end || v[0] == '-' || end == v || x > max) {
        std::fprintf(stderr, "compactor-runner: %s needs an integer in [0, %lu], got '%s'\n", flag, max, v);
        std::exit(2);
    }
    return x;
}

double parse_double(const char* flag, const char* v) {
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(v, &end);
    if (errno || !end || *end || end == v) {
        std::fprintf(stderr, "compactor-runner: %s needs a number, got '%s'\n", flag, v);
        std::exit(2);
    }
    return x;
}

std::vector<int> parse_cpus(const char* flag, const char* v) {
    std::vector<int> cpus;
    std::string s(v);
    size_t pos = 0;
    while (pos <= s.size()) {
        const size_t comma = s.find(',', pos);
        const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        cpus.push_back(static_cast<int>(parse_uint(flag, item.c_str())));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return cpus;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    std::string plan_path;
    CollectorConfig cfg;
    unsigned repeat = 1;
    uint64_t floor_pages = 4096;
    bool want_probe = false, want_floor = false, want_compaction_floor = false;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto value = [&]() -> const char* {
                if (i + 1 >= argc) {
                    std::fprintf(stderr, "compactor-runner: %s needs a value\n", a.c_str());
                    std::exit(2);
                }
                return argv[++i];
            };
            if (a == "--probe") want_probe = true;
            else if (a == "--floor") want_floor = true;
            else if (a == "--compaction-floor") want_compaction_floor = true;
            else if (a == "--floor-pages") floor_pages = parse_uint("--floor-pages", value(), ULONG_MAX);
            else if (a == "--strategy") cfg.strategy = parse_strategy(value());
            else if (a == "--faults") cfg.faults = parse_fault_mode(value());
            else if (a == "--access") cfg.access = parse_access(value());
            else if (a == "--mutators") cfg.mutators = static_cast<unsigned>(parse_uint("--mutators", value()));
            else if (a == "--batch") cfg.batch = static_cast<unsigned>(parse_uint("--batch", value()));
            else if (a == "--move-min-run") cfg.move_min_run = static_cast<unsigned>(parse_uint("--move-min-run", value()));
            else if (a == "--backoff") cfg.backoff = parse_backoff(value());
            else if (a == "--claim-ahead") cfg.claim_ahead = true;
            else if (a == "--gc-cpu") cfg.gc_cpu = static_cast<int>(parse_uint("--gc-cpu", value()));
            else if (a == "--mutator-cpus") cfg.mutator_cpus = parse_cpus("--mutator-cpus", value());
            else if (a == "--release-chunk") cfg.release_chunk = parse_uint("--release-chunk", value(), ULONG_MAX);
            else if (a == "--write-fraction") cfg.write_fraction = parse_double("--write-fraction", value());
            else if (a == "--swapped") cfg.swapped = parse_double("--swapped", value());
            else if (a == "--repeat") repeat = static_cast<unsigned>(parse_uint("--repeat", value()));
            else if (a == "--seed") cfg.seed = parse_uint("--seed", value(), ULONG_MAX);
            else if (a == "--watchdog") cfg.watchdog_seconds = parse_double("--watchdog", value());
            else if (a == "-h" || a == "--help") {
                usage(stdout);
                return 0;
            } else if (!a.empty() && a[0] == '-') {
                std::fprintf(stderr, "compactor-runner: unknown option %s\n", a.c_str());
                usage(stderr);
                return 2;
            } else plan_path = a;
        }
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "compactor-runner: %s\n", e.what());
        return 2;
    }
    try {
        validate(cfg, page_size());  // the same checks, and messages, as Python's collect()
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "compactor-runner: %s\n", e.what());
        return 2;
    }
    if (repeat == 0 || repeat > 10000 || floor_pages == 0 || floor_pages > (1u << 24)) {
        std::fprintf(stderr, "compactor-runner: --repeat must lie in [1, 10000] and --floor-pages in [1, 16777216]\n");
        return 2;
    }
    if (want_probe) {
        std::printf("%s\n", probe_json().c_str());
        return 0;
    }
    try {
        if (want_floor) {
            std::printf("%s\n", floor_json(measure_install_floor(floor_pages, repeat)).c_str());
            return 0;
        }
        if (plan_path.empty()) {
            usage(stderr);
            return 2;
        }
        PlanBundle b = load_plan_file(plan_path);
        const PlanView plan = b.plan.view();
        HeapSpace space(plan.heap_size);
        const ObjectTableView tv = b.table.view();
        if (want_compaction_floor) {
            // User-space compaction only: no userfaultfd, and the plan's page size need not be this kernel's.
            space.reset(tv, b.root_objects.data(), b.root_objects.size());
            std::printf("%s\n", floor_json(measure_compaction_floor(plan, space.base(), repeat)).c_str());
            return 0;
        }
        std::string runs;
        for (unsigned r = 0; r < repeat; ++r) {
            space.reset(tv, b.root_objects.data(), b.root_objects.size());
            const GraphDigest before = graph_digest(space.base(), space.size(), space.roots().data(), space.roots().size());
            if (before.digest != b.expected_digest) {
                std::fprintf(stderr, "compactor-runner: the rebuilt heap's digest differs from the plan file's: the file is corrupt\n");
                return 3;
            }
            CollectionOutcome out = collect(space, plan, cfg, before.digest, &tv, b.root_objects.data());
            runs += (r ? ", " : "") + collection_json(out);
        }
        std::printf("{\"probe\": %s, \"plan\": {\"heap_bytes\": %llu, \"live_bytes\": %llu, \"page_size\": %llu}, \"runs\": [%s]}\n",
                    probe_json().c_str(), static_cast<unsigned long long>(plan.heap_size),
                    static_cast<unsigned long long>(plan.live_bytes), static_cast<unsigned long long>(plan.page_size),
                    runs.c_str());
        return 0;
    } catch (const PlanError& e) {
        std::fprintf(stderr, "compactor-runner: %s\n", e.what());
        return 2;
    } catch (const HeapCorruption& e) {
        std::fprintf(stderr, "compactor-runner: heap verification failed: %s\n", e.what());
        return 3;
    } catch (const UffdUnavailable& e) {
        std::fprintf(stderr, "compactor-runner: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "compactor-runner: %s\n", e.what());
        return 1;
    }
}
