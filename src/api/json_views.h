#pragma once
// How resources look in the API. Secrets never appear here except the one-time password and
// token fields the caller adds to a create answer.

#include <nlohmann/json.hpp>

#include "control/control_plane.h"

namespace keyward {

nlohmann::json ProjectJson(const Project& p);
nlohmann::json KeyJson(const EncryptionKey& k);
nlohmann::json ClusterJson(const Cluster& c, const std::string& endpoint);
nlohmann::json AuditJson(const AuditEvent& e);
nlohmann::json ChecksJson(const std::vector<KeyCheck>& checks);

}  // namespace keyward
