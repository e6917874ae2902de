#pragma once
// How resources look in the API. Secrets never appear here except the one-time password and
// token fields the caller adds to a create answer.

#include <nlohmann/json.hpp>

#include "control/control_plane.h"

namespace keyward {

// Timestamps are RFC 3339 in UTC: "2026-11-29T06:53:20Z" from unix seconds, with milliseconds
// ("…:20.123Z") from unix milliseconds. Optional times (0: not yet) are null.
std::string Rfc3339(int64_t unix_seconds);
std::string Rfc3339Ms(int64_t unix_ms);
nlohmann::json OptionalRfc3339(int64_t unix_seconds);

nlohmann::json ProjectJson(const Project& p);
nlohmann::json KeyJson(const EncryptionKey& k);
nlohmann::json ClusterJson(const Cluster& c, const ControlPlane::EndpointInfo& endpoint);
nlohmann::json AuditJson(const AuditEvent& e);
nlohmann::json UserJson(const User& u);
nlohmann::json MemberJson(const Member& m);
nlohmann::json TokenJson(const TokenInfo& t);
nlohmann::json ChecksJson(const std::vector<KeyCheck>& checks);

}  // namespace keyward
