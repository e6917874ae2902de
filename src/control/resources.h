#pragma once
// The control plane's resources, as stored. Organization → Projects → Encryption keys, Clusters.
// Plain records; the rules that govern them live in control_plane.h.

#include <cstdint>
#include <optional>
#include <string>

#include "kms/encryption_key.h"

namespace keyward {

struct User {
  std::string id;
  std::string org_id;
  std::string name;
  std::string org_role;  // "owner" | "member"
  int64_t created_at = 0;
  // Organization-level grant: may create projects without being an organization owner.
  bool project_creator = false;
  // The credential this request came with (set by Authenticate only): what it may mint is
  // bounded by it — a token created with it expires no later, and only the owner token itself
  // rotates the owner token.
  std::string token_kind;        // "owner" | "member" | "personal"
  int64_t token_expires_at = 0;  // unix seconds; 0: never
};

// A user's role in one project.
struct Member {
  User user;
  std::string role;  // "project_owner" | "project_member" | "project_viewer"
};

// An API token as listed: never the token or its hash.
struct TokenInfo {
  std::string id;
  std::string user_id;
  // "owner" (the organization owner's token file), "member" (given when the member was added),
  // "personal" (created by its user with POST /tokens).
  std::string kind;
  int64_t created_at = 0;
  int64_t expires_at = 0;  // 0: never
};

struct Project {
  std::string id;
  std::string org_id;
  std::string name;
  bool cmek_enabled = false;
  int64_t created_at = 0;
};

// How a cluster's data is protected right now, as the data plane last reported it.
struct ClusterEncryption {
  std::string provider;  // of the cluster's key record (read-only here: joined from it)
  std::string key_name;
  std::string key_version;  // the KMS key version that wraps the dictionary key now
  int64_t wrapped_at = 0;   // unix seconds of that wrap (0: not known yet)
  std::string dictionary_key_id;
  std::string data_key_ids_json = "[]";  // data-key ids that live files use, e.g. [1,2]
  int64_t last_key_check_at = 0;
  std::string last_key_check_error;
  std::string reencrypt_json;  // "" or {"state","files_done","files_total","started_at",…}
};

// Cluster states: creating → available ⇄ paused; available|paused → inaccessible → available;
// available ⇄ degraded (read-only after a storage error) → paused|inaccessible;
// creating → failed; any but creating → deleting → deleted.
struct Cluster {
  std::string id;
  std::string project_id;
  std::string name;
  std::string cloud_provider;  // "aws" | "azure" | "gcp"
  std::string region;
  std::string tier;  // "dedicated" | "starter"
  std::string state;
  std::string state_message;
  int port = 0;
  std::string password_sha256_hex;
  std::string encryption_key_id;
  std::string backup_policy_json;  // "" until set
  int64_t created_at = 0;
  int64_t updated_at = 0;
  // Why the cluster is in its state when the server put it there: "key" (the key health
  // monitor cut it, or its key could not open it; it reopens by itself when the key is usable
  // again), "corruption" (its files are damaged: `keyward cluster repair`), "storage" (disk full
  // or another I/O error; retried periodically), "" otherwise.
  std::string state_cause;
  // When its writes are acknowledged: "always" | "everysec" | "none" (server/durability.h),
  // chosen at creation (default: the server's --durability).
  std::string durability;
  // What serves it: "kv" (RocksDB behind the Redis protocol) | "mariadb" (a mariadbd keyward
  // supervises, under the same key hierarchy). See control/cluster_engine.h.
  std::string engine = "kv";
  // How many servers serve it: 1, or 3 for a MariaDB Galera cluster (engine mariadb).
  int nodes = 1;
  ClusterEncryption encryption;
};

// A compare-and-set change of a cluster's state (see MetadataStore::TransitionCluster).
struct ClusterTransition {
  std::string state;
  std::string message;
  std::string cause;
  std::optional<int> port;  // unset: keep the stored port
  int64_t now = 0;
};

struct AuditEvent {
  int64_t id = 0;
  std::string project_id;
  int64_t at_ms = 0;
  std::string actor;   // user id and name, never a token
  std::string action;  // e.g. "cluster.create", "encryption_key.test"
  std::string target;  // resource id
  std::string key_id;
  std::string key_version;
  std::string result;  // "success" | "failure"
  std::string message;
};

// Which audit events a list returns: all conditions given must hold (empty strings: no
// condition). Matching is exact on ids, so an id never selects another id it happens to prefix.
struct AuditFilter {
  int64_t since_ms = 0;
  int64_t until_ms = INT64_MAX;
  // The cluster's own events (target) and those that name it ("…, cluster <id>": backups,
  // restores into it).
  std::string cluster_id;
  // Events recorded under the key ("<id> (provider name)") or about the key record (target).
  std::string key_id;
  // A user id or name ("<id> (<name>)"), or "keyward" for the server's own actions.
  std::string actor;
  // "cluster.create", or a prefix before a dot: "cluster" selects cluster.*.
  std::string action;
  bool newest_first = false;
};

}  // namespace keyward
