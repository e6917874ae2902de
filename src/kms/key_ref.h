#pragma once
// What a KMS provider reads of an encryption-key record: the provider's own settings and the ids
// keyward binds in, not the whole record (its state, checks and timestamps are the control
// plane's).

#include <nlohmann/json.hpp>
#include <string>

#include "kms/encryption_key.h"

namespace keyward {

struct KmsKeyRef {
  std::string record_id;   // keyward's key record (for messages and the test command)
  std::string project_id;  // bound into the KMS's context where it has one (AWS)
  std::string region;
  std::string key_name;  // the full key name (Azure, suffix included), the ARN (AWS)
  nlohmann::json config = nlohmann::json::object();  // the provider_config as stored

  static KmsKeyRef FromRecord(const EncryptionKey& key) {
    KmsKeyRef ref;
    ref.record_id = key.id;
    ref.project_id = key.project_id;
    ref.region = key.region;
    ref.key_name = key.key_name;
    ref.config = nlohmann::json::parse(key.config_json, nullptr, false);
    if (!ref.config.is_object()) ref.config = nlohmann::json::object();
    return ref;
  }
};

}  // namespace keyward
