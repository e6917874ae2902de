#include "crypto/sha256.h"

#include <openssl/evp.h>

#include "util/bytes.h"

namespace keyward {

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string Sha256Hex(std::string_view data) { return HexEncode(Sha256(data)); }

}  // namespace keyward
