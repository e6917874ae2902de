#pragma once
// The encryption-key record as the KMS providers read it (which key, where, with what settings).
// Stored and governed by the control plane (control/resources.h includes it); defined here so
// the providers below the control plane need nothing from it.

#include <cstdint>
#include <string>

namespace keyward {

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
  // What the key health monitor saw last (0 / "" until its first check).
  int64_t last_check_at = 0;
  std::string last_check_error;
  std::string current_version;  // the newest enabled version the KMS reported
};

}  // namespace keyward
