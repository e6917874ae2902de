#pragma once
// Readers for every reply keyward gets from Azure (Key Vault / Managed HSM data plane, Entra ID,
// IMDS, ARM). Each takes the raw HTTP body and returns a plain struct or an error status; none
// throws, whatever the bytes: a body that is not JSON, a required field missing or null, a field
// of another type, or a number out of range is an InvalidArgument error whose message names the
// field and never quotes the body (an unwrap reply carries key material, a token reply a
// bearer token). Optional fields that are absent or null stay unset.
//
// No network code here, so every reader can be fuzzed (fuzz/azure_reply_fuzz.cc). Callers decide
// what an unreadable reply means (the Key Vault provider treats it as a transient failure).
// Stateless and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace keyward {

// GET {vault}/keys/{name}: the key bundle.
struct KeyVaultKeyBundle {
  std::string kid;      // https://{vault}/keys/{name}/{version}
  std::string version;  // the kid's last segment
  bool enabled = false;
  std::optional<int64_t> not_before;  // attributes.nbf, unix seconds
  std::optional<int64_t> expires_at;  // attributes.exp, unix seconds
  std::optional<std::string> recovery_level;
  std::optional<std::vector<std::string>> key_ops;  // key.key_ops
};
absl::StatusOr<KeyVaultKeyBundle> ParseKeyBundle(std::string_view body);

// POST .../wrapkey: the versioned kid that wrapped and the wrapped bytes (decoded).
struct KeyVaultWrapResult {
  std::string kid;
  std::string version;
  std::string ciphertext;
};
absl::StatusOr<KeyVaultWrapResult> ParseWrapResult(std::string_view body);

// POST .../unwrapkey: the unwrapped key. Our copies of the encoded and decoded bytes are wiped;
// the caller wipes `body`.
struct KeyVaultUnwrapResult {
  std::string kid;  // empty when the reply names none
  SecretBytes plaintext;
};
absl::StatusOr<KeyVaultUnwrapResult> ParseUnwrapResult(std::string_view body);

// {"error":{"code","message","innererror":{"code"}}} as Key Vault and ARM answer failures.
struct AzureErrorBody {
  std::string code;
  std::string inner_code;
  std::string message;
};
absl::StatusOr<AzureErrorBody> ParseAzureError(std::string_view body);

// A token from Entra ID's token endpoint (expires_in a number) or from IMDS (every field a
// string, plus expires_on in unix seconds): one reader takes both forms. The access token must be
// visible ASCII (it goes into an Authorization header); the parsed document's copy is wiped.
struct EntraTokenReply {
  std::string access_token;
  std::string token_type;
  int64_t expires_in = 0;  // seconds, required
  std::optional<int64_t> expires_on;
};
absl::StatusOr<EntraTokenReply> ParseTokenReply(std::string_view body);

// {"error","error_description"} from Entra ID or IMDS on failure.
struct EntraErrorReply {
  std::string error;
  std::string error_description;
};
absl::StatusOr<EntraErrorReply> ParseEntraError(std::string_view body);

// ARM GET of Microsoft.KeyVault/vaults/{name} or managedHSMs/{name}.
struct ArmVaultReply {
  std::optional<std::string> location;   // lower-cased
  std::optional<bool> purge_protection;  // properties.enablePurgeProtection
};
absl::StatusOr<ArmVaultReply> ParseArmVault(std::string_view body);

// The version of a kid "https://{host}/keys/{name}/{hex version}"; empty when `kid` is not one.
std::string KeyVersionFromKid(std::string_view kid);

// At most `max` bytes of outside text for an error message: cut on a UTF-8 boundary, control
// characters and invalid bytes replaced, so the message is valid UTF-8 wherever it goes.
std::string ExcerptForMessage(std::string_view text, size_t max = 200);

}  // namespace keyward
