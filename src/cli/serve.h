#pragma once
// `keyward serve`: control plane and data plane in one process.

#include <string>
#include <vector>

namespace keyward {

int RunServe(const std::vector<std::string>& args);

}  // namespace keyward
