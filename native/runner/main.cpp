// compactor-runner: executes a plan file with the same core the Python package uses (no Python, no planner).
// Prints one JSON object on stdout; errors go to stderr with a non-zero exit status.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <algorithm>
#include <sys/utsname.h>
#include <unistd.h>
#include <vector>
#include <cerrno>

#include "compactor/collector.hpp"
#include "compactor/compaction_floor.hpp"
#include "compactor/config_options.hpp"
#include "compactor/errors.hpp"
#include "compactor/heap_space.hpp"
#include "compactor/install_floor.hpp"
#include "compactor/mapping.hpp"
#include "compactor/memory_limits.hpp"
#include "compactor/plan_file.hpp"
#include "compactor/result_json.hpp"
#include "compactor/uffd.hpp"
#include "compactor/verify.hpp"

using namespace compactor;

namespace {

// The usage text: the runner's own modes, then every collection option of the table (config_options.def).
void usage(FILE* f) {
    std::fprintf(f,
                 "usage: compactor-runner --probe\n"
                 "       compactor-runner --floor [--floor-pages N] [--repeat N]\n"
                 "       compactor-runner PLAN_FILE --compaction-floor [--repeat N]\n"
                 "       compactor-runner PLAN_FILE [--repeat N] [--print-config] [OPTION ...]\n"
                 "options of a collection (bools: --name or --no-name):\n");
    for (const OptionInfo& o : config_options()) {
        std::string value = o.type == "bool" ? "" : o.type == "enum" ? " " : o.type == "cpus" ? " CPU,CPU,..." : " N";
        for (size_t i = 0; i < o.choices.size(); ++i) value += (i ? "|" : "") + o.choices[i];
        std::string range = o.lowest.empty() ? "" : ", in [" + o.lowest + ", " + o.highest + "]" + (o.unit.empty() ? "" : " " + o.unit);
        std::fprintf(f, "  %s%s  (default %s%s)\n", o.flag.c_str(), value.c_str(),
                     o.default_text.empty() ? "none" : o.default_text.c_str(), range.c_str());
    }
    std::fprintf(f, "  --watchdog SECONDS  (alias of --watchdog-seconds)\n");
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

// The option a flag names ("--hops" -> hops; a bool also as "--no-name", then `negated`), or nullptr.
const OptionInfo* option_of_flag(const std::string& flag, bool& negated) {
    negated = false;
    for (const OptionInfo& o : config_options()) {
        if (flag == o.flag || (o.name == "watchdog_seconds" && flag == "--watchdog")) return &o;
        if (o.type == "bool" && flag == "--no-" + o.flag.substr(2)) {
            negated = true;
            return &o;
        }
    }
    return nullptr;
}

// Refuses (exit 2, with the numbers) a plan whose heap would not fit under this process's memory limits, before
// anything is mapped: collection_need (memory_limits.hpp; the runner keeps no pristine image).
void check_memory_or_exit(const PlanView& plan, const CollectorConfig& cfg, bool floor_only) {
    constexpr uint64_t MiB = 1ull << 20;
    const uint64_t heap = plan.heap_size;
    const bool concurrent = !floor_only && cfg.strategy != Strategy::Stw;
    uint64_t need_memory = 0, need_as = 0;
    std::string parts;
    for (const NeedPart& n : collection_need(heap, plan.live_bytes, concurrent, cfg.mutators, cfg.trace_events,
                                             thread_stack_bytes())) {
        need_memory += n.memory;
        need_as += n.address_space;
        parts += (parts.empty() ? "" : " + ") + n.what + " " + std::to_string(std::max(n.memory, n.address_space) / MiB) +
                 " MiB";
    }
    const std::string what = std::string(floor_only ? "measuring the compaction floor of " : "a collection of ") +
                             "a " + std::to_string(heap / MiB) + " MiB heap";
    if (const auto shortfall = memory_shortfall(need_memory, need_as, what, parts)) {
        std::fprintf(stderr, "compactor-runner: %s\n", shortfall->message.c_str());
        std::exit(2);
    }
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
    bool want_probe = false, want_floor = false, want_compaction_floor = false, want_print_config = false;
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
            else if (a == "--repeat") repeat = static_cast<unsigned>(parse_uint("--repeat", value()));
            else if (a == "--print-config") want_print_config = true;
            else if (a == "-h" || a == "--help") {
                usage(stdout);
                return 0;
            } else if (!a.empty() && a[0] == '-') {
                bool negated = false;
                const OptionInfo* option = option_of_flag(a, negated);
                if (!option) {
                    std::fprintf(stderr, "compactor-runner: unknown option %s\n", a.c_str());
                    usage(stderr);
                    return 2;
                }
                set_option(cfg, option->name, option->type == "bool" ? (negated ? "false" : "true") : value());
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
    if (want_print_config) {  // the configuration this command line makes, validated, and nothing run
        std::printf("%s\n", config_json(cfg).c_str());
        return 0;
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
        check_memory_or_exit(plan, cfg, want_compaction_floor);
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
