#pragma once
// Cryptographic randomness from OpenSSL's RAND_bytes; the only source of keys, IVs and nonces.

#include <string>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace keyward {

absl::Status FillRandom(void* out, size_t len);
absl::StatusOr<SecretBytes> RandomSecret(size_t len);
absl::StatusOr<std::string> RandomString(size_t len);
// A random lowercase hex token of 2*bytes characters (ids, suffixes, passwords).
absl::StatusOr<std::string> RandomHex(size_t bytes);

}  // namespace keyward
