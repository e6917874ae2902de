#include "crypto/random.h"

#include <openssl/rand.h>

#include <climits>

#include "util/bytes.h"

namespace keyward {

absl::Status FillRandom(void* out, size_t len) {
  if (len > INT_MAX) return absl::InvalidArgumentError("random request too large");
  if (RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(len)) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<SecretBytes> RandomSecret(size_t len) {
  SecretBytes s(len);
  absl::Status st = FillRandom(s.data(), len);
  if (!st.ok()) return st;
  return s;
}

absl::StatusOr<std::string> RandomString(size_t len) {
  std::string s(len, '\0');
  absl::Status st = FillRandom(s.data(), len);
  if (!st.ok()) return st;
  return s;
}

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  auto raw = RandomString(bytes);
  if (!raw.ok()) return raw.status();
  return HexEncode(*raw);
}

}  // namespace keyward
