#pragma once
// Access tokens of the emulated Entra ID: HS256 JWTs signed with the emulator's secret, which
// the emulated Key Vault and ARM verify (signature, issuer, audience, expiry).

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace keyward::emulator {

std::string SignJwt(const nlohmann::json& claims, const std::string& secret);
absl::StatusOr<nlohmann::json> VerifyJwt(const std::string& token, const std::string& secret,
                                         int64_t now);

}  // namespace keyward::emulator
