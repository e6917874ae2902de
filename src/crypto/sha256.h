#pragma once
// SHA-256 and HMAC-SHA256 through OpenSSL EVP; used for checksums and token hashing.

#include <openssl/types.h>

#include <string>
#include <string_view>

namespace keyward {

std::string Sha256(std::string_view data);     // 32 raw bytes
std::string Sha256Hex(std::string_view data);  // 64 hex characters

// SHA-256 over data given in pieces (files and streams up to gigabytes).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::string_view data);
  std::string FinishHex();  // 64 hex characters; call once

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace keyward
