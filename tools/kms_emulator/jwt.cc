#include "jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/base64.h"

namespace keyward::emulator {
namespace {

std::string Hmac(const std::string& secret, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace

std::string SignJwt(const nlohmann::json& claims, const std::string& secret) {
  std::string input =
      Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." + Base64UrlEncode(claims.dump());
  return input + "." + Base64UrlEncode(Hmac(secret, input));
}

absl::StatusOr<nlohmann::json> VerifyJwt(const std::string& token, const std::string& secret,
                                         int64_t now) {
  auto dot1 = token.find('.');
  auto dot2 = token.rfind('.');
  if (dot1 == std::string::npos || dot1 == dot2)
    return absl::UnauthenticatedError("malformed token");
  std::string expected = Base64UrlEncode(Hmac(secret, token.substr(0, dot2)));
  std::string given = token.substr(dot2 + 1);
  if (expected.size() != given.size() ||
      CRYPTO_memcmp(expected.data(), given.data(), given.size()) != 0) {
    return absl::UnauthenticatedError("token signature is invalid");
  }
  auto payload = Base64Decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload.ok()) return absl::UnauthenticatedError("malformed token");
  nlohmann::json claims = nlohmann::json::parse(*payload, nullptr, false);
  if (!claims.is_object()) return absl::UnauthenticatedError("malformed token");
  if (claims.value("exp", int64_t{0}) <= now) return absl::UnauthenticatedError("token expired");
  return claims;
}

}  // namespace keyward::emulator
