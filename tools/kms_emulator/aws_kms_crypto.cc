// AWS KMS cryptography on the emulator: Encrypt, Decrypt, GenerateDataKey(WithoutPlaintext),
// ReEncrypt, under symmetric keys with every rotated material kept (old ciphertexts decrypt) and
// the encryption context bound as associated data (see aws_kms.h for the blob format).

#include "absl/strings/str_cat.h"
#include "aws_kms.h"
#include "aws_kms_service.h"
#include "crypto/aes_gcm.h"
#include "crypto/random.h"
#include "util/base64.h"
#include "util/bytes.h"

namespace keyward::emulator::aws {
namespace {

absl::StatusOr<SecretBytes> Material(const json& key, uint32_t version) {
  if (version >= key["versions"].size()) return absl::NotFoundError("no such key material");
  auto raw = HexDecode(key["versions"][version].get<std::string>());
  if (!raw.ok()) return raw.status();
  return SecretBytes::FromView(*raw);
}

void InvalidCiphertext(httplib::Response& res) {
  AwsError(res, 400, "InvalidCiphertextException", "");
}

}  // namespace

bool AwsService::ValidContext(const json& body, const char* field, json* out) {
  *out = json::object();
  if (!body.contains(field) || body[field].is_null()) return true;
  if (!body[field].is_object()) {
    AwsError(res_, 400, "ValidationException", absl::StrCat(field, " must be a map of strings"));
    return false;
  }
  for (const auto& [k, v] : body[field].items()) {
    if (!v.is_string()) {
      AwsError(res_, 400, "ValidationException", absl::StrCat(field, " values must be strings"));
      return false;
    }
  }
  *out = body[field];
  return true;
}

std::string AwsService::Seal(json& key, const std::string& plaintext, const json& context) {
  uint32_t version = static_cast<uint32_t>(key["versions"].size() - 1);
  std::string id = key["id"];
  auto material = Material(key, version);
  if (!material.ok()) return "";
  auto sealed = GcmSeal(*material, plaintext, BlobAad(id, version, context));
  return sealed.ok() ? MakeBlob(id, version, *sealed) : "";
}

std::optional<std::string> AwsService::Open(const json& body, const std::string& blob_field,
                                            const std::string& context_field,
                                            const std::string& key_field, const std::string& action,
                                            json** key_out) {
  if (!Required(body, blob_field.c_str(), "ciphertextBlob")) return std::nullopt;
  json context;
  if (!ValidContext(body, context_field.c_str(), &context)) return std::nullopt;
  auto blob = body[blob_field].is_string() ? Base64Decode(body[blob_field].get<std::string>())
                                           : absl::InvalidArgumentError("not a string");
  std::optional<BlobParts> parts = blob.ok() ? ParseBlob(*blob) : std::nullopt;
  if (!parts) {
    InvalidCiphertext(res_);
    return std::nullopt;
  }
  json& keys = st_["keys"];
  if (!keys.contains(parts->key_id) || keys[parts->key_id]["region"] != caller_.region) {
    InvalidCiphertext(res_);
    return std::nullopt;
  }
  json& key = keys[parts->key_id];
  if (body.contains(key_field) && !body[key_field].is_null()) {
    json* named = ResolveKey(body, key_field.c_str());
    if (!named) return std::nullopt;
    if ((*named)["id"] != key["id"]) {
      AwsError(res_, 400, "IncorrectKeyException",
               "The key ID in the request does not identify a CMK that can perform this "
               "operation.");
      return std::nullopt;
    }
  }
  if (!Authorized(key, action) || !Usable(key) || !Symmetric(key)) return std::nullopt;
  auto material = Material(key, parts->version);
  auto plain = material.ok() ? GcmOpen(*material, parts->sealed,
                                       BlobAad(parts->key_id, parts->version, context))
                             : absl::StatusOr<SecretBytes>(material.status());
  if (!plain.ok()) {
    InvalidCiphertext(res_);
    return std::nullopt;
  }
  *key_out = &key;
  return std::string(plain->view());
}

void AwsService::Encrypt(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Required(body, "Plaintext", "plaintext")) return;
  json context;
  if (!ValidContext(body, "EncryptionContext", &context)) return;
  auto plain = body["Plaintext"].is_string() ? Base64Decode(body["Plaintext"].get<std::string>())
                                             : absl::InvalidArgumentError("not a string");
  if (!plain.ok() || plain->empty() || plain->size() > 4096) {
    return AwsError(res_, 400, "ValidationException",
                    "1 validation error detected: Value at 'plaintext' failed to satisfy "
                    "constraint: Member must have length between 1 and 4096");
  }
  if (!Authorized(*key, "kms:Encrypt") || !Usable(*key) || !Symmetric(*key)) return;
  std::string blob = Seal(*key, *plain, context);
  if (blob.empty()) return AwsError(res_, 500, "KMSInternalException", "sealing failed");
  Reply({{"CiphertextBlob", Base64Encode(blob)},
         {"KeyId", (*key)["arn"]},
         {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}});
}

void AwsService::Decrypt(const json& body) {
  json* key = nullptr;
  auto plain = Open(body, "CiphertextBlob", "EncryptionContext", "KeyId", "kms:Decrypt", &key);
  if (!plain) return;
  Reply({{"KeyId", (*key)["arn"]},
         {"Plaintext", Base64Encode(*plain)},
         {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}});
}

void AwsService::GenerateDataKey(const json& body, bool with_plaintext) {
  json* key = ResolveKey(body);
  if (!key) return;
  json context;
  if (!ValidContext(body, "EncryptionContext", &context)) return;
  int bytes = 0;
  if (body.contains("KeySpec") == body.contains("NumberOfBytes")) {
    return AwsError(res_, 400, "ValidationException",
                    "Please specify either number of bytes or key spec.");
  }
  if (body.contains("KeySpec")) {
    std::string spec = body.value("KeySpec", "");
    bytes = spec == "AES_256" ? 32 : spec == "AES_128" ? 16 : 0;
  } else if (body["NumberOfBytes"].is_number_integer()) {
    bytes = body["NumberOfBytes"];
    if (bytes > 1024) bytes = 0;
  }
  if (bytes <= 0) {
    return AwsError(res_, 400, "ValidationException",
                    "KeySpec must be AES_256 or AES_128, NumberOfBytes between 1 and 1024");
  }
  const char* action =
      with_plaintext ? "kms:GenerateDataKey" : "kms:GenerateDataKeyWithoutPlaintext";
  if (!Authorized(*key, action) || !Usable(*key) || !Symmetric(*key)) return;
  auto dek = RandomSecret(static_cast<size_t>(bytes));
  if (!dek.ok()) return AwsError(res_, 500, "KMSInternalException", "no randomness");
  std::string blob = Seal(*key, std::string(dek->view()), context);
  json out = {{"CiphertextBlob", Base64Encode(blob)}, {"KeyId", (*key)["arn"]}};
  if (with_plaintext) out["Plaintext"] = Base64Encode(dek->view());
  Reply(out);
}

void AwsService::ReEncrypt(const json& body) {
  json* source = nullptr;
  auto plain = Open(body, "CiphertextBlob", "SourceEncryptionContext", "SourceKeyId",
                    "kms:ReEncryptFrom", &source);
  if (!plain) return;
  std::string source_arn = (*source)["arn"];
  json* dest = ResolveKey(body, "DestinationKeyId");
  if (!dest) return;
  json context;
  if (!ValidContext(body, "DestinationEncryptionContext", &context)) return;
  if (!Authorized(*dest, "kms:ReEncryptTo") || !Usable(*dest) || !Symmetric(*dest)) return;
  std::string blob = Seal(*dest, *plain, context);
  Reply({{"CiphertextBlob", Base64Encode(blob)},
         {"SourceKeyId", source_arn},
         {"KeyId", (*dest)["arn"]},
         {"SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT"},
         {"DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT"}});
}

}  // namespace keyward::emulator::aws
