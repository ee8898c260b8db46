// The options table (config_options.def) as data: what the runner parses and prints, what Python lists, and what
// the README's options table is compared with.
#pragma once

#include <string>
#include <vector>

#include "compactor/collector.hpp"

namespace compactor {

struct OptionInfo {
    std::string name;          // the CollectorConfig field and Python attribute
    std::string flag;          // the runner flag: --name with dashes
    std::string type;          // enum, uint, int, real, bool or cpus (a comma-separated CPU list)
    std::string default_text;  // the default in the runner's text form
    std::string lowest, highest, unit;  // numeric options: the allowed range ("" for the others)
    std::vector<std::string> choices;   // enum options: every value
    std::string help;
};

// Every option, in the table's order.
const std::vector<OptionInfo>& config_options();

// Sets option `name` from its text form (the runner's flag value; bools take true/false/1/0, enums their names,
// cpus a comma-separated list). Throws std::invalid_argument naming the option and what it takes; returns false
// when no option has that name. Ranges are checked by validate(), not here.
bool set_option(CollectorConfig& cfg, const std::string& name, const std::string& text);

// Option `name` of `cfg` in its text form (throws std::invalid_argument for an unknown name).
std::string option_text(const CollectorConfig& cfg, const std::string& name);

// Every option of `cfg` as one JSON object, in the table's order (the runner's --print-config).
std::string config_json(const CollectorConfig& cfg);

}  // namespace compactor
