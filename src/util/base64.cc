#include "util/base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace keyward {

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string s = Base64Encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text) {
  std::string s;
  s.reserve(text.size() + 3);  // room for padding, so no reallocation leaves a stray copy
  s.assign(text);
  // The text may be key material (an unwrap reply): wipe our working copy on every return.
  struct Wipe {
    std::string& s;
    ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
  } wipe{s};
  for (char& c : s) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (!s.empty() && s.back() == '=') s.pop_back();
  size_t pad = (4 - s.size() % 4) % 4;
  if (pad == 3) return absl::InvalidArgumentError("malformed base64");
  s.append(pad, '=');
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '=';
    if (!ok) return absl::InvalidArgumentError("malformed base64");
  }
  std::string out(s.size() / 4 * 3, '\0');
  int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return absl::InvalidArgumentError("malformed base64");
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace keyward
