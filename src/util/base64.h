#pragma once
// Base64 and base64url (RFC 4648, url form without padding), as Azure Key Vault and JWTs use.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace keyward {

std::string Base64Encode(std::string_view bytes);
std::string Base64UrlEncode(std::string_view bytes);
// Accepts standard or url alphabet, with or without padding.
absl::StatusOr<std::string> Base64Decode(std::string_view text);

}  // namespace keyward
