#pragma once
// AES-256-GCM for small records (wrapped keys, the key dictionary).
// Sealed format: nonce (12 bytes, random) || ciphertext || tag (16 bytes).
// Open() fails with DataLoss on any tampering, wrong key or wrong associated data; the message
// never contains key or plaintext bytes.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace keyward {

inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;

absl::StatusOr<std::string> GcmSeal(const SecretBytes& key, std::string_view plaintext,
                                    std::string_view associated_data);
absl::StatusOr<SecretBytes> GcmOpen(const SecretBytes& key, std::string_view sealed,
                                    std::string_view associated_data);

// GcmOpen into `out` (`capacity` bytes, at least the ciphertext's size) without allocating, for
// callers that reuse wiped buffers (backups); returns the plaintext size. On failure `out` may
// hold unauthenticated bytes: the caller wipes it.
absl::StatusOr<size_t> GcmOpenInto(const SecretBytes& key, std::string_view sealed,
                                   std::string_view associated_data, uint8_t* out, size_t capacity);

// GcmSeal into `out`, reusing its memory (a backup's workers seal chunk after chunk): `out`
// becomes nonce || ciphertext || tag, resized only when its size differs.
absl::Status GcmSealInto(const SecretBytes& key, std::string_view plaintext,
                         std::string_view associated_data, std::string* out);

// Deterministic-nonce variant, for published test vectors only.
absl::StatusOr<std::string> GcmSealWithNonceForTest(const SecretBytes& key, std::string_view nonce,
                                                    std::string_view plaintext,
                                                    std::string_view associated_data);

}  // namespace keyward
