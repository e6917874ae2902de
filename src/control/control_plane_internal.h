#pragma once
// Helpers the control plane's files share (defined in control_plane.cc and
// cluster_lifecycle.cc); not an API.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/resources.h"

namespace keyward::control_internal {

// Project, member and cluster names: 1-63 of a-z, 0-9, '-', not starting with '-'.
absl::Status ValidateName(const std::string& what, const std::string& name);
// A cloud region name (eastus, us-east-1).
absl::Status ValidateRegion(const std::string& region);
// A new resource id: `prefix` and 16 random hex digits.
absl::StatusOr<std::string> NewId(const char* prefix);

// The cluster state machine (cluster_lifecycle.cc): whether `from` may become `to`, the error
// for an action the state does not allow, and how a key is named in messages.
bool CanTransition(const std::string& from, const std::string& to);
absl::Status IllegalTransition(const Cluster& c, const std::string& action);
std::string KeyLabel(const EncryptionKey& key);

// Backups (backup_ops.cc, backup_restore.cc): the name prefix of a restore's staging directory
// under clusters/ (a crash leaves it for start-up recovery to remove), and a recursive remove
// that ignores errors.
inline constexpr char kRestoreStagingPrefix[] = ".restore-";
void RemoveQuietly(const std::string& path);

}  // namespace keyward::control_internal
