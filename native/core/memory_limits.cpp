#include "compactor/memory_limits.hpp"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/resource.h>

#include "compactor/errors.hpp"
#include "compactor/trace_events.hpp"

namespace compactor {

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kUnlimitedV1 = 1ull << 62;  // v1 shows "no limit" as PAGE_COUNTER_MAX pages

bool read_text(const std::string& path, std::string& out) {
    std::ifstream f(path);
    if (!f) return false;
    std::stringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return true;
}

bool read_u64(const std::string& path, uint64_t& v) {
    std::string s;
    if (!read_text(path, s) || s.empty() || s == "max") return false;
    char* end = nullptr;
    v = std::strtoull(s.c_str(), &end, 10);
    return end && *end == '\0';
}

// The value in kB of a "Name:   N kB" line of a /proc file, in bytes.
bool proc_field(const std::string& path, const std::string& field, uint64_t& bytes) {
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line)) {
        if (line.compare(0, field.size() + 1, field + ":") == 0) {
            bytes = std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
            return true;
        }
    }
    return false;
}

std::string mib(uint64_t b) { return std::to_string(b / kMiB) + " MiB"; }

}  // namespace

std::vector<std::pair<std::string, std::string>> cgroup_dirs() {
    std::string v1_path, v2_path, v1_mount, v2_mount, v1_root = "/", v2_root = "/";
    bool has_v1 = false, has_v2 = false;
    {
        std::ifstream f("/proc/self/cgroup");
        std::string line;
        while (std::getline(f, line)) {
            const size_t a = line.find(':'), b = line.find(':', a + 1);
            if (a == std::string::npos || b == std::string::npos) continue;
            const std::string id = line.substr(0, a), ctl = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
            if (id == "0" && ctl.empty()) v2_path = path, has_v2 = true;
            else if (("," + ctl + ",").find(",memory,") != std::string::npos) v1_path = path, has_v1 = true;
        }
    }
    {
        std::ifstream f("/proc/self/mountinfo");
        std::string line;
        while (std::getline(f, line)) {
            const size_t sep = line.find(" - ");
            if (sep == std::string::npos) continue;
            std::istringstream left(line.substr(0, sep)), right(line.substr(sep + 3));
            std::string id, parent, dev, root, point, fstype, src, opts;
            left >> id >> parent >> dev >> root >> point;
            right >> fstype >> src >> opts;
            if (fstype == "cgroup2" && v2_mount.empty()) v2_mount = point, v2_root = root;
            else if (fstype == "cgroup" && ("," + opts + ",").find(",memory,") != std::string::npos && v1_mount.empty())
                v1_mount = point, v1_root = root;
        }
    }
    std::vector<std::pair<std::string, std::string>> out;
    auto walk = [&](const std::string& version, std::string rel, const std::string& mount, const std::string& root) {
        if (root != "/" && rel.compare(0, root.size(), root) == 0) rel = rel.substr(root.size());
        std::string d = mount;
        if (!rel.empty() && rel != "/") d += (rel[0] == '/' ? "" : "/") + rel;
        while (d.size() > 1 && d.back() == '/') d.pop_back();
        const std::string probe = version == "2" ? "/memory.max" : "/memory.limit_in_bytes";
        for (;;) {
            std::string unused;
            if (read_text(d + probe, unused) || read_text(d + "/memory.current", unused)) out.emplace_back(version, d);
            if (d.size() <= mount.size()) break;
            d = d.substr(0, d.rfind('/'));
        }
    };
    if (has_v1 && !v1_mount.empty()) walk("1", v1_path, v1_mount, v1_root);
    if (out.empty() && has_v2 && !v2_mount.empty()) walk("2", v2_path, v2_mount, v2_root);
    return out;
}

std::vector<MemoryLimit> memory_limits() {
    std::vector<MemoryLimit> out;
    uint64_t avail = 0;
    if (proc_field("/proc/meminfo", "MemAvailable", avail))
        out.push_back({"MemAvailable", "/proc/meminfo MemAvailable = " + mib(avail), avail, false});
    for (const auto& [version, d] : cgroup_dirs()) {
        const std::string lname = version == "2" ? "memory.max" : "memory.limit_in_bytes";
        const std::string uname = version == "2" ? "memory.current" : "memory.usage_in_bytes";
        uint64_t lim = 0, cur = 0;
        if (!read_u64(d + "/" + lname, lim) || !read_u64(d + "/" + uname, cur) || lim >= kUnlimitedV1) continue;
        out.push_back({"cgroup " + lname, d + "/" + lname + " = " + std::to_string(lim) + " (" + mib(lim) + "), " +
                                              uname + " = " + std::to_string(cur) + " (" + mib(cur) + ")",
                       lim > cur ? lim - cur : 0, false});
    }
    rlimit rl{};
    uint64_t size = 0;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && proc_field("/proc/self/status", "VmSize", size)) {
        const uint64_t lim = rl.rlim_cur;
        out.push_back({"RLIMIT_AS", "RLIMIT_AS = " + std::to_string(lim) + " (" + mib(lim) +
                                        "), VmSize in /proc/self/status = " + mib(size),
                       lim > size ? lim - size : 0, true});
    }
    if (const char* env = std::getenv("COMPACTOR_MEMORY_LIMIT"); env && *env) {
        char* end = nullptr;
        errno = 0;
        const uint64_t v = std::strtoull(env, &end, 10);
        if (errno || *end || env[0] == '-')  // as Python's compactor.memory refuses it
            throw PlanError(std::string("COMPACTOR_MEMORY_LIMIT='") + env + "' is not a number of bytes");
        out.push_back({"COMPACTOR_MEMORY_LIMIT",
                       "the environment's COMPACTOR_MEMORY_LIMIT = " + std::to_string(v) + " (" + mib(v) + ")", v, false});
    }
    return out;
}

std::optional<Shortfall> memory_shortfall(uint64_t need_memory, uint64_t need_address_space, const std::string& what,
                                          const std::string& parts, const std::string& remedy) {
    const MemoryLimit* worst = nullptr;
    int64_t worst_margin = 0;
    uint64_t worst_need = 0;
    const std::vector<MemoryLimit> limits = memory_limits();
    for (const MemoryLimit& l : limits) {
        const uint64_t n = l.address_space ? need_address_space : need_memory;
        if (n <= l.available) continue;
        const int64_t margin = static_cast<int64_t>(l.available) - static_cast<int64_t>(n);
        if (!worst || margin < worst_margin) worst = &l, worst_margin = margin, worst_need = n;
    }
    if (!worst) return std::nullopt;
    return Shortfall{*worst, worst_need,
                     what + " needs about " + mib(worst_need) + (worst->address_space ? " of address space" : " of memory") +
                         " (" + parts + "); this process may use " + mib(worst->available) + " more under " +
                         worst->name + " (" + worst->source + "): " + remedy};
}

std::vector<NeedPart> collection_need(uint64_t heap, uint64_t live, bool concurrent, unsigned mutators,
                                      uint64_t trace_events, uint64_t stack) {
    const uint64_t fixed = 32 * kMiB + 8 * kMiB * mutators;
    std::vector<NeedPart> parts{{"moving space", heap, heap}};
    if (concurrent) parts.push_back({"from-space", live < heap ? live : heap, heap});
    parts.push_back({"buffers, samples, write logs, thread stacks", fixed, fixed + (mutators + 3ull) * stack});
    if (trace_events && concurrent) {
        const uint64_t traces = sizeof(TraceEvent) * trace_events * (mutators + 3ull);
        parts.push_back({"trace buffers", traces, traces});
    }
    return parts;
}

uint64_t thread_stack_bytes() {
    rlimit rs{};
    if (getrlimit(RLIMIT_STACK, &rs) == 0 && rs.rlim_cur != RLIM_INFINITY && rs.rlim_cur > 0) return rs.rlim_cur;
    return 8ull << 20;
}

}  // namespace compactor
