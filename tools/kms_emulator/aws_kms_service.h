#pragma once
// One AWS KMS request being served (aws_kms_handlers.cc: authentication, key management;
// aws_kms_crypto.cc: Encrypt, Decrypt, GenerateDataKey, ReEncrypt). Built after SigV4 has
// identified the caller, with the emulator's mutex held; answers into `res`.

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "emulator_impl.h"

namespace keyward::emulator::aws {

using nlohmann::json;

void AwsError(httplib::Response& res, int status, const std::string& type,
              const std::string& message);

struct Caller {
  std::string access_key_id;
  std::string arn;
  std::string account;
  std::string region;
};

class AwsService {
 public:
  AwsService(EmulatorImpl& emu, json& state, Caller caller, httplib::Response& res)
      : emu_(emu), st_(state), caller_(std::move(caller)), res_(res) {}

  // `op` is the X-Amz-Target operation ("Encrypt"); `body` a JSON object.
  void Serve(const std::string& op, const json& body);

 private:
  // key management (aws_kms_handlers.cc)
  void CreateKey(const json& body);
  void DescribeKey(const json& body);
  void ListKeys(const json& body);
  void CreateAlias(const json& body);
  void DeleteAlias(const json& body);
  void ListAliases(const json& body);
  void SetEnabled(const json& body, bool enabled);
  void ScheduleKeyDeletion(const json& body);
  void CancelKeyDeletion(const json& body);
  void SetRotation(const json& body, bool enabled);
  void GetKeyRotationStatus(const json& body);
  void RotateKeyOnDemand(const json& body);
  void ListKeyRotations(const json& body);
  void PutKeyPolicy(const json& body);
  void GetKeyPolicy(const json& body);
  // cryptography (aws_kms_crypto.cc)
  void Encrypt(const json& body);
  void Decrypt(const json& body);
  void GenerateDataKey(const json& body, bool with_plaintext);
  void ReEncrypt(const json& body);
  // Seals `plaintext` under the key's newest material: the CiphertextBlob bytes.
  std::string Seal(json& key, const std::string& plaintext, const json& context);
  // Opens a blob under its key, or answers the error and returns nullopt. `expected_key` is the
  // request's KeyId when given.
  std::optional<std::string> Open(const json& body, const std::string& blob_field,
                                  const std::string& context_field, const std::string& key_field,
                                  const std::string& action, json** key_out);

  // helpers
  json* ResolveKey(const json& body, const char* field = "KeyId");
  bool Authorized(const json& key, const std::string& action);
  bool Usable(const json& key);
  bool Symmetric(const json& key);
  bool Required(const json& body, const char* field, const char* member_name);
  bool ValidContext(const json& body, const char* field, json* out);
  // Parses body.Policy into `out`, refusing (and answering) a malformed policy or one that
  // would lock the caller out of PutKeyPolicy, as KMS does for CreateKey and PutKeyPolicy.
  bool AcceptablePolicy(const json& body, json* out);
  json Metadata(const json& key) const;
  void Reply(const json& body);

  EmulatorImpl& emu_;
  json& st_;  // state_["aws"]
  Caller caller_;
  httplib::Response& res_;
};

}  // namespace keyward::emulator::aws
