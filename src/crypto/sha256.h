#pragma once
// SHA-256 and HMAC-SHA256 through OpenSSL EVP; used for checksums and token hashing.

#include <string>
#include <string_view>

namespace keyward {

std::string Sha256(std::string_view data);     // 32 raw bytes
std::string Sha256Hex(std::string_view data);  // 64 hex characters

}  // namespace keyward
