#pragma once
// RSA operations of the emulated Key Vault: generate, export the public part as JWK fields,
// wrap and unwrap with RSA-OAEP (SHA-1) or RSA-OAEP-256 (SHA-256).

#include <string>

#include "absl/status/statusor.h"

namespace keyward::emulator {

absl::StatusOr<std::string> GenerateRsaPem(int bits);
// Base64url modulus and exponent.
absl::Status RsaPublicJwk(const std::string& pem, std::string* n, std::string* e);
absl::StatusOr<std::string> RsaOaep(const std::string& pem, const std::string& alg,
                                    const std::string& data, bool encrypt);

// RFC 3394 AES key wrap (A256KW) with a 32-byte key given in hex.
absl::StatusOr<std::string> AesKeyWrap(const std::string& key_hex, const std::string& data,
                                       bool wrap);

}  // namespace keyward::emulator
