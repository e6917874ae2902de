#pragma once
// Helpers the control plane's files share (defined in control_plane.cc); not an API.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace keyward::control_internal {

// Project, member and cluster names: 1-63 of a-z, 0-9, '-', not starting with '-'.
absl::Status ValidateName(const std::string& what, const std::string& name);
// A cloud region name (eastus, us-east-1).
absl::Status ValidateRegion(const std::string& region);
// A new resource id: `prefix` and 16 random hex digits.
absl::StatusOr<std::string> NewId(const char* prefix);

}  // namespace keyward::control_internal
