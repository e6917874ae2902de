#pragma once
// Readers of what AWS sends keyward: KMS JSON 1.1 replies and errors, the shared credentials /
// config files, STS XML and IMDS credential JSON. Outside input: every reader returns a Status
// for anything malformed or of the wrong type, never throws or asserts (fuzzed by
// fuzz/aws_reply_fuzz.cc). No network code, so these live in keyward_base.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace keyward::aws {

// {"__type":"com.amazonaws.kms#NotFoundException","message":"..."}: the type with any prefix up
// to '#' removed; message from "message" or "Message". Empty fields when absent.
struct AwsErrorBody {
  std::string type;
  std::string message;
};
AwsErrorBody ParseAwsError(std::string_view body);

struct DescribeKeyReply {
  std::string key_id;
  std::string arn;
  std::string key_state;  // Enabled, Disabled, PendingDeletion, ...
  bool enabled = false;
  std::string key_spec;  // KeySpec, or CustomerMasterKeySpec from older replies
  std::string key_usage;
};
absl::StatusOr<DescribeKeyReply> ParseDescribeKey(std::string_view body);

struct EncryptReply {
  std::string key_id;      // the key's ARN
  std::string ciphertext;  // decoded CiphertextBlob
};
absl::StatusOr<EncryptReply> ParseEncryptReply(std::string_view body);

struct DecryptReply {
  std::string key_id;
  SecretBytes plaintext;
};
absl::StatusOr<DecryptReply> ParseDecryptReply(std::string_view body);

// The region of a KMS ARN (arn:aws...:kms:REGION:ACCOUNT:key/ID), or "".
std::string RegionOfArn(std::string_view arn);

// INI as the AWS shared files write it: section -> key -> value. Section names are kept as
// written ("default", "profile dev"); '#' and ';' start comments; keys are lower-cased.
std::map<std::string, std::map<std::string, std::string>> ParseIni(std::string_view text);

// Temporary credentials from STS (AssumeRoleWithWebIdentity XML) or IMDS (JSON).
struct TemporaryCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  int64_t expires_at = 0;  // unix seconds
};
absl::StatusOr<TemporaryCredentials> ParseStsCredentials(std::string_view xml);
absl::StatusOr<TemporaryCredentials> ParseImdsCredentials(std::string_view json);
// The <Arn> of an STS GetCallerIdentity reply, as a key policy names it: an assumed-role session
// (arn:aws:sts::ACCT:assumed-role/ROLE/SESSION) becomes its role (arn:aws:iam::ACCT:role/ROLE).
absl::StatusOr<std::string> ParseCallerIdentityArn(std::string_view xml);
// "2024-01-01T00:00:00Z" (fractional seconds allowed) to unix seconds.
absl::StatusOr<int64_t> ParseIso8601(std::string_view text);

}  // namespace keyward::aws
