#include "api/json_views.h"

namespace keyward {

using nlohmann::json;

json ProjectJson(const Project& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"cmek_enabled", p.cmek_enabled},
          {"created_at", p.created_at}};
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
          {"created_at", k.created_at},
          {"updated_at", k.updated_at},
          {"last_check_at", k.last_check_at ? json(k.last_check_at) : json(nullptr)},
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
          {"wrapped_at", e.wrapped_at ? json(e.wrapped_at) : json(nullptr)},
          {"dictionary_key_id", e.dictionary_key_id},
          {"data_key_ids_in_use", data_keys.is_array() ? data_keys : json::array()},
          {"last_key_check_at", e.last_key_check_at ? json(e.last_key_check_at) : json(nullptr)},
          {"last_key_check_error", e.last_key_check_error},
          {"reencrypt_progress", progress.is_discarded() ? json(nullptr) : progress}};
}

json ClusterJson(const Cluster& c, const std::string& endpoint) {
  json policy = c.backup_policy_json.empty() ? json(nullptr)
                                             : json::parse(c.backup_policy_json, nullptr, false);
  return {{"id", c.id},
          {"project_id", c.project_id},
          {"name", c.name},
          {"cloud_provider", c.cloud_provider},
          {"region", c.region},
          {"tier", c.tier},
          {"durability", c.durability},
          {"state", c.state},
          {"state_message", c.state_message},
          {"state_cause", c.state_cause},
          {"endpoint", endpoint},
          {"encryption_key_id", c.encryption_key_id},
          {"encryption", EncryptionJson(c)},
          {"backup_policy", policy.is_discarded() ? json(nullptr) : policy},
          {"created_at", c.created_at},
          {"updated_at", c.updated_at}};
}

json AuditJson(const AuditEvent& e) {
  return {{"id", e.id},          {"project_id", e.project_id},   {"at_ms", e.at_ms},
          {"actor", e.actor},    {"action", e.action},           {"target", e.target},
          {"key_id", e.key_id},  {"key_version", e.key_version}, {"result", e.result},
          {"message", e.message}};
}

json ChecksJson(const std::vector<KeyCheck>& checks) {
  json out = json::array();
  for (const auto& c : checks)
    out.push_back({{"step", c.step}, {"ok", c.ok}, {"message", c.message}});
  return out;
}

}  // namespace keyward
