// The options table as data, and the text form of every option type: generated from config_options.def.
#include "compactor/config_options.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "compactor/result_json.hpp"

namespace compactor {

namespace {

// Text form of each option type, in both directions.
std::string to_text(Strategy v) { return strategy_name(v); }
std::string to_text(FaultMode v) { return fault_mode_name(v); }
std::string to_text(Access v) { return access_name(v); }
std::string to_text(Backoff v) { return backoff_name(v); }
std::string to_text(Think v) { return think_name(v); }
std::string to_text(AppSignal v) { return app_signal_name(v); }
std::string to_text(RunLength v) { return v.is_auto() ? "auto" : std::to_string(v.pages); }
std::string to_text(bool v) { return v ? "true" : "false"; }
std::string to_text(const std::vector<int>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
std::string to_text(T v) {
    if constexpr (std::is_floating_point_v<T>) {
        for (int digits = 6;; ++digits) {  // the shortest text that reads back as the same value
            std::ostringstream o;
            o.precision(digits);
            o << v;
            if (digits >= 17 || std::strtod(o.str().c_str(), nullptr) == v) return o.str();
        }
    }
    return std::to_string(v);
}

void from_text(const std::string& t, Strategy& v) { v = parse_strategy(t); }
void from_text(const std::string& t, FaultMode& v) { v = parse_fault_mode(t); }
void from_text(const std::string& t, Access& v) { v = parse_access(t); }
void from_text(const std::string& t, Backoff& v) { v = parse_backoff(t); }
void from_text(const std::string& t, Think& v) { v = parse_think(t); }
void from_text(const std::string& t, AppSignal& v) { v = parse_app_signal(t); }
void from_text(const std::string& t, bool& v) {
    if (t == "true" || t == "1") v = true;
    else if (t == "false" || t == "0") v = false;
    else throw std::invalid_argument("takes true or false, got '" + t + "'");
}
void from_text(const std::string& t, double& v) {
    char* end = nullptr;
    errno = 0;
    v = std::strtod(t.c_str(), &end);
    if (errno || t.empty() || *end) throw std::invalid_argument("takes a number, got '" + t + "'");
}
template <typename T, typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
void from_text(const std::string& t, T& v) {
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(t.c_str(), &end, 10);
    const bool is_unsigned = std::is_unsigned_v<T>;
    if (is_unsigned && !t.empty() && t[0] != '-') {  // the full unsigned range, beyond long long
        errno = 0;
        const unsigned long long u = std::strtoull(t.c_str(), &end, 10);
        if (errno || t.empty() || *end || u > std::numeric_limits<T>::max())
            throw std::invalid_argument("takes an integer in [0, " + std::to_string(std::numeric_limits<T>::max()) +
                                        "], got '" + t + "'");
        v = static_cast<T>(u);
        return;
    }
    if (errno || t.empty() || *end || (is_unsigned && x < 0) || x < static_cast<long long>(std::numeric_limits<T>::min()) ||
        (!is_unsigned && x > static_cast<long long>(std::numeric_limits<T>::max())))
        throw std::invalid_argument(std::string("takes ") + (is_unsigned ? "a non-negative" : "an") + " integer, got '" +
                                    t + "'");
    v = static_cast<T>(x);
}
void from_text(const std::string& t, RunLength& v) {
    if (t == "auto") {
        v = RunLength{};
        return;
    }
    unsigned pages = 0;
    try {
        from_text(t, pages);
    } catch (const std::invalid_argument&) {
        throw std::invalid_argument("takes auto or a number of pages, got '" + t + "'");
    }
    if (pages == 0) throw std::invalid_argument("takes auto or a number of pages >= 1, got '" + t + "'");
    v = RunLength{pages};
}
void from_text(const std::string& t, std::vector<int>& v) {
    v.clear();
    size_t pos = 0;
    while (pos <= t.size()) {
        const size_t comma = t.find(',', pos);
        int cpu = 0;
        from_text(t.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos), cpu);
        v.push_back(cpu);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
}

template <typename T> const char* type_name(const T&) {
    if constexpr (std::is_same_v<T, bool>) return "bool";
    else if constexpr (std::is_same_v<T, RunLength>) return "uint-or-auto";
    else if constexpr (std::is_same_v<T, std::vector<int>>) return "cpus";
    else if constexpr (std::is_floating_point_v<T>) return "real";
    else if constexpr (std::is_unsigned_v<T>) return "uint";
    else if constexpr (std::is_integral_v<T>) return "int";
    else return "enum";
}

std::vector<std::string> choices(const Strategy&) {
    std::vector<std::string> v;
    for (Strategy s : kStrategies) v.push_back(strategy_name(s));
    return v;
}
std::vector<std::string> choices(const FaultMode&) { return {"sigbus", "thread"}; }
std::vector<std::string> choices(const Access&) { return {"random", "sequential", "hot-set"}; }
std::vector<std::string> choices(const Backoff&) { return {"art", "futex"}; }
std::vector<std::string> choices(const Think&) { return {"busy", "sleep"}; }
std::vector<std::string> choices(const AppSignal&) { return {"none", "sigprof", "sigalrm", "sigusr1"}; }
std::vector<std::string> choices(const RunLength&) { return {"auto"}; }
template <typename T> std::vector<std::string> choices(const T&) { return {}; }

template <typename T> constexpr bool is_ranged = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

template <typename T, typename L, typename H>
void fill_range(OptionInfo& o, L lo, H hi) {
    if constexpr (is_ranged<T>) {
        o.lowest = to_text(static_cast<T>(lo));
        o.highest = to_text(static_cast<T>(hi));
    } else if constexpr (std::is_same_v<T, RunLength>) {
        o.lowest = to_text(static_cast<unsigned>(lo));
        o.highest = to_text(static_cast<unsigned>(hi));
    }
}

std::string dashed(const char* name) {
    std::string s = "--";
    for (const char* p = name; *p; ++p) s += *p == '_' ? '-' : *p;
    return s;
}

std::vector<OptionInfo> build_table() {
    const CollectorConfig defaults;
    std::vector<OptionInfo> v;
#define COMPACTOR_OPTION(name, type, default_value, lowest, highest, unit, help)     \
    {                                                                                  \
        OptionInfo o{#name, dashed(#name), type_name(defaults.name), to_text(defaults.name), "", "", unit, \
                     choices(defaults.name), help};                                    \
        fill_range<type>(o, lowest, highest);                                          \
        v.push_back(std::move(o));                                                     \
    }
#include "compactor/config_options.def"
    return v;
}

}  // namespace

const std::vector<OptionInfo>& config_options() {
    static const std::vector<OptionInfo> table = build_table();
    return table;
}

bool set_option(CollectorConfig& cfg, const std::string& option, const std::string& text) {
    try {
#define COMPACTOR_OPTION(name, type, default_value, lowest, highest, unit, help) \
    if (option == #name) {                                                       \
        from_text(text, cfg.name);                                               \
        return true;                                                             \
    }
#include "compactor/config_options.def"
    } catch (const std::invalid_argument& e) {
        const std::string why = e.what();  // enum parsers name their option already; the others say what it takes
        throw std::invalid_argument(why.rfind("takes", 0) == 0 ? option + " " + why : why);
    }
    return false;
}

std::string option_text(const CollectorConfig& cfg, const std::string& option) {
#define COMPACTOR_OPTION(name, type, default_value, lowest, highest, unit, help) \
    if (option == #name) return to_text(cfg.name);
#include "compactor/config_options.def"
    throw std::invalid_argument("unknown option '" + option + "'");
}

std::string config_json(const CollectorConfig& cfg) {
    std::string s = "{";
    for (const OptionInfo& o : config_options()) {
        const std::string t = option_text(cfg, o.name);
        const bool quoted = o.type == "enum" || (o.type == "uint-or-auto" && t == "auto");
        s += (s.size() > 1 ? ", " : "") + json_escape(o.name) + ": ";
        s += o.type == "cpus" ? "[" + t + "]" : quoted ? json_escape(t) : t;
    }
    return s + "}";
}

}  // namespace compactor
