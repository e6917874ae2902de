#pragma once
// The AWS KMS side of the emulator: pieces the handlers (aws_kms_handlers.cc) share, kept free of
// HTTP so they read as the rules they emulate.
//
// Key policies: a caller may perform `action` on a key when an Allow statement names it (its
// ARN, "*", or its account as "arn:aws:iam::ACCOUNT:root" / "ACCOUNT") and no Deny statement
// does. The emulator has no IAM: naming the account in a key policy lets every principal of that
// account in, as if each had an IAM policy allowing kms:*. Principals of other accounts get in
// only through a statement naming them, which is how keyward's generated policy works.
//
// Ciphertext blobs (the emulator's own format, opaque to clients as AWS's is):
//   "KWK1" | key id (36 ASCII) | material version (u32 big-endian) | AES-256-GCM sealed
//   (nonce 12 || ciphertext || tag 16), with associated data = key id, version and the
//   encryption context's canonical JSON (keys sorted), so another context fails to decrypt.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace keyward::emulator::aws {

using nlohmann::json;

// Whether `pattern` (IAM wildcards * and ?, case-insensitive) matches `text`.
bool WildcardMatch(const std::string& pattern, const std::string& text);

enum class PolicyDecision { kAllow, kImplicitDeny, kExplicitDeny };
PolicyDecision EvaluateKeyPolicy(const json& policy, const std::string& caller_arn,
                                 const std::string& caller_account, const std::string& action);

// A key policy document refused as AWS refuses it (MalformedPolicyDocumentException's message).
absl::Status ValidatePolicy(const json& policy);
json DefaultKeyPolicy(const std::string& account_id);

struct BlobParts {
  std::string key_id;
  uint32_t version = 0;
  std::string sealed;
};
std::string MakeBlob(const std::string& key_id, uint32_t version, const std::string& sealed);
std::optional<BlobParts> ParseBlob(const std::string& blob);
std::string BlobAad(const std::string& key_id, uint32_t version, const json& context);

// A real AWS region name (the emulator answers for all of them).
bool KnownRegion(const std::string& region);

}  // namespace keyward::emulator::aws
