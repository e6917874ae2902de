#pragma once
// Minimal command-line flag reader: `--name value`, `--name=value`, boolean `--name`, and
// positional arguments. Unknown flags are errors, so a typo never silently changes behaviour.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

struct ParsedFlags {
  std::map<std::string, std::string> values;
  std::vector<std::string> positional;
  std::optional<std::string> Get(const std::string& name) const {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
  bool Has(const std::string& name) const { return values.count(name) > 0; }
};

// `valued` flags take a value; `booleans` do not.
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       const std::set<std::string>& valued,
                                       const std::set<std::string>& booleans);

}  // namespace keyward
