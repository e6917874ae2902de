#pragma once
// What serves a cluster. Every control-plane rule (CMEK project, key per region, dedicated tier,
// backups, the key monitor) is the same for every engine; only the data plane differs:
//   kv:      keyward's encrypted RocksDB store behind the Redis protocol (ClusterStore).
//   mariadb: a mariadbd process keyward starts and supervises (mariadb/mariadb_supervisor.h),
//            encrypting through the keyward_key_management plugin under the cluster's keys.

#include <optional>
#include <string>
#include <string_view>

namespace keyward {

enum class ClusterEngine { kKv, kMariadb };

inline std::string_view ClusterEngineName(ClusterEngine e) {
  return e == ClusterEngine::kMariadb ? "mariadb" : "kv";
}

inline std::optional<ClusterEngine> ParseClusterEngine(std::string_view name) {
  if (name == "kv") return ClusterEngine::kKv;
  if (name == "mariadb") return ClusterEngine::kMariadb;
  return std::nullopt;
}

// For messages that list the choices.
inline constexpr char kClusterEngineChoices[] =
    "kv (Redis protocol) or mariadb (MySQL-compatible SQL)";

}  // namespace keyward
