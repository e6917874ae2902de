#pragma once
// The command-line client of the REST API: `keyward cluster create|list|get|delete`.

#include <string>
#include <vector>

namespace keyward {

int RunClusterCommand(const std::vector<std::string>& args);

}  // namespace keyward
