// compactor-runner: executes a plan file with the same core the Python package uses (no Python, no planner).
// Prints one JSON object on stdout; errors go to stderr with a non-zero exit status.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/utsname.h>
#include <unistd.h>

#include "compactor/collector.hpp"
#include "compactor/errors.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/install_floor.hpp"
#include "compactor/mapping.hpp"
#include "compactor/result_json.hpp"
#include "compactor/uffd.hpp"
#include "compactor/verify.hpp"

using namespace compactor;

namespace {

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: compactor-runner --probe\n"
                 "       compactor-runner --floor [--floor-pages N] [--repeat N]\n"
                 "       compactor-runner PLAN_FILE [--strategy stw|copy|move|move-alloc] [--faults sigbus|thread]\n"
                 "                        [--mutators N] [--batch N] [--access random|sequential|hot-set] [--repeat N]\n"
                 "                        [--seed N] [--watchdog SECONDS]\n");
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

unsigned long parse_uint(const char* flag, const char* v) {
    char* end = nullptr;
    errno = 0;
    unsigned long x = std::strtoul(v, &end, 10);
    if (errno || !end || *end || v[0] == '-') {
        std::fprintf(stderr, "compactor-runner: %s needs a non-negative integer, got '%s'\n", flag, v);
        std::exit(2);
    }
    return x;
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
    bool want_probe = false, want_floor = false;
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
            else if (a == "--floor-pages") floor_pages = parse_uint("--floor-pages", value());
            else if (a == "--strategy") cfg.strategy = parse_strategy(value());
            else if (a == "--faults") cfg.faults = parse_fault_mode(value());
            else if (a == "--access") cfg.access = parse_access(value());
            else if (a == "--mutators") cfg.mutators = static_cast<unsigned>(parse_uint("--mutators", value()));
            else if (a == "--batch") cfg.batch = static_cast<unsigned>(parse_uint("--batch", value()));
            else if (a == "--repeat") repeat = static_cast<unsigned>(parse_uint("--repeat", value()));
            else if (a == "--seed") cfg.seed = parse_uint("--seed", value());
            else if (a == "--watchdog") cfg.watchdog_seconds = std::atof(value());
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
    if (cfg.batch == 0 || repeat == 0 || cfg.mutators > 256 || !(cfg.watchdog_seconds > 0)) {
        std::fprintf(stderr, "compactor-runner: --batch and --repeat must be >= 1, --mutators <= 256, --watchdog > 0\n");
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
