#include "api/json_views.h"

#include <time.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace keyward {

using nlohmann::json;

std::string Rfc3339Ms(int64_t unix_ms) {
  int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  int ms = static_cast<int>(unix_ms - secs * 1000);
  time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string Rfc3339(int64_t unix_seconds) {
  std::string s = Rfc3339Ms(unix_seconds * 1000);
  return s.substr(0, s.size() - 5) + "Z";  // drop ".000"
}

json OptionalRfc3339(int64_t unix_seconds) {
  return unix_seconds ? json(Rfc3339(unix_seconds)) : json(nullptr);
}

json ProjectJson(const Project& p) {
  return {{"id", p.id},
          {"org_id", p.org_id},
          {"name", p.name},
          {"cmek_enabled", p.cmek_enabled},
          {"created_at", Rfc3339(p.created_at)}};
}

json KeyJson(const EncryptionKey& k) {
  json config = json::parse(k.config_json, nullptr, false);
  return {{"id", k.id},
          {"project_id", k.project_id},
          {"provider", k.provider},
          {"region", k.region},
          {"state", k.state},
          {"status_message", k.status_message},
          {"key_name", k.key_name},
          {"config", config.is_discarded() ? json::object() : config},
          {"created_at", Rfc3339(k.created_at)},
          {"updated_at", Rfc3339(k.updated_at)},
          {"last_check_at", OptionalRfc3339(k.last_check_at)},
          {"last_check_error", k.last_check_error},
          {"current_version", k.current_version}};
}

json EncryptionJson(const Cluster& c) {
  const ClusterEncryption& e = c.encryption;
  json data_keys = json::parse(e.data_key_ids_json, nullptr, false);
  json progress =
      e.reencrypt_json.empty() ? json(nullptr) : json::parse(e.reencrypt_json, nullptr, false);
  return {{"provider", e.provider},
          {"key_id", c.encryption_key_id},
          {"key_name", e.key_name},
          {"key_version", e.key_version},
          {"wrapped_at", OptionalRfc3339(e.wrapped_at)},
          {"dictionary_key_id", e.dictionary_key_id},
          {"data_key_ids_in_use", data_keys.is_array() ? data_keys : json::array()},
          {"last_key_check_at", OptionalRfc3339(e.last_key_check_at)},
          {"last_key_check_error", e.last_key_check_error},
          {"reencrypt_progress", progress.is_discarded() ? json(nullptr) : progress}};
}

namespace {

// How a client reaches the endpoint; the password (shown once, at creation) is the cluster's.
std::string ConnectCommand(const Cluster& c, const ControlPlane::EndpointInfo& endpoint) {
  size_t colon = endpoint.address.rfind(':');
  if (endpoint.address.empty() || colon == std::string::npos) return "";
  std::string host = endpoint.address.substr(0, colon);
  std::string port = endpoint.address.substr(colon + 1);
  if (c.engine == "mariadb") {
    // With TLS the server refuses plaintext clients (require_secure_transport).
    return absl::StrCat(
        "mariadb -h ", host, " -P ", port, " -u admin -p",
        endpoint.tls
            ? absl::StrCat(" --ssl --ssl-verify-server-cert --ssl-ca ",
                           endpoint.ca_file.empty() ? std::string("CA_FILE") : endpoint.ca_file)
            : std::string());
  }
  return absl::StrCat("redis-cli -h ", host, " -p ", port,
                      endpoint.tls ? " --tls --cacert CA_FILE" : "", " --user default --askpass");
}

}  // namespace

json ClusterJson(const Cluster& c, const ControlPlane::EndpointInfo& endpoint) {
  json policy = c.backup_policy_json.empty() ? json(nullptr)
                                             : json::parse(c.backup_policy_json, nullptr, false);
  return {{"id", c.id},
          {"project_id", c.project_id},
          {"name", c.name},
          {"cloud_provider", c.cloud_provider},
          {"region", c.region},
          {"tier", c.tier},
          {"durability", c.durability},
          {"engine", c.engine},
          {"nodes", c.nodes},
          {"state", c.state},
          {"state_message", c.state_message},
          {"state_cause", c.state_cause},
          {"endpoint", endpoint.address},
          {"endpoints", endpoint.addresses},
          {"tls", endpoint.tls},
          {"tls_ca_file", endpoint.ca_file},
          {"connect", ConnectCommand(c, endpoint)},
          {"encryption_key_id", c.encryption_key_id},
          {"encryption", EncryptionJson(c)},
          {"backup_policy", policy.is_discarded() ? json(nullptr) : policy},
          {"created_at", Rfc3339(c.created_at)},
          {"updated_at", Rfc3339(c.updated_at)}};
}

json AuditJson(const AuditEvent& e) {
  // at_ms stays for clients written before `time` (see the OpenAPI document).
  return {{"id", e.id},         {"project_id", e.project_id}, {"time", Rfc3339Ms(e.at_ms)},
          {"at_ms", e.at_ms},   {"actor", e.actor},           {"action", e.action},
          {"target", e.target}, {"key_id", e.key_id},         {"key_version", e.key_version},
          {"result", e.result}, {"message", e.message}};
}

json UserJson(const User& u) {
  json roles = json::array({u.org_role == "owner" ? "owner" : "member"});
  if (u.project_creator) roles.push_back("project_creator");
  return {
      {"id", u.id}, {"name", u.name}, {"org_roles", roles}, {"created_at", Rfc3339(u.created_at)}};
}

json MemberJson(const Member& m) {
  return {{"user_id", m.user.id},
          {"name", m.user.name},
          {"role", m.role},
          {"created_at", Rfc3339(m.user.created_at)}};
}

json TokenJson(const TokenInfo& t) {
  return {{"id", t.id},
          {"user_id", t.user_id},
          {"kind", t.kind},
          {"created_at", Rfc3339(t.created_at)},
          {"expires_at", OptionalRfc3339(t.expires_at)}};
}

json ChecksJson(const std::vector<KeyCheck>& checks) {
  json out = json::array();
  for (const auto& c : checks)
    out.push_back({{"step", c.step}, {"ok", c.ok}, {"message", c.message}});
  return out;
}

}  // namespace keyward
