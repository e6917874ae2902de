#pragma once
// The control plane's resources, as stored. Organization → Projects → Encryption keys, Clusters.
// Plain records; the rules that govern them live in control_plane.h.

#include <cstdint>
#include <string>

namespace keyward {

struct User {
  std::string id;
  std::string org_id;
  std::string name;
  std::string org_role;  // "owner" | "member"
  int64_t created_at = 0;
};

struct Project {
  std::string id;
  std::string org_id;
  std::string name;
  bool cmek_enabled = false;
  int64_t created_at = 0;
};

// Encryption key states: pending → active | failed (re-testable).
struct EncryptionKey {
  std::string id;
  std::string project_id;
  std::string provider;  // "azure-key-vault" | "aws-kms" | "escrow"
  std::string region;    // "*" for the escrow key of a non-CMEK project
  std::string state;
  std::string key_name;     // full name with keyward's suffix (Azure), ARN (AWS), escrow key id
  std::string config_json;  // provider settings the customer gave (vault name, ARN, …)
  std::string status_message;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// Cluster states: creating → available ⇄ paused; available|paused → inaccessible → available;
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

}  // namespace keyward
