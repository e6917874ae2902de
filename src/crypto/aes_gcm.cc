#include "crypto/aes_gcm.h"

#include <openssl/evp.h>

#include <climits>
#include <cstring>
#include <memory>

#include "crypto/random.h"

namespace keyward {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

absl::Status CheckSizes(const SecretBytes& key, std::string_view a, std::string_view b) {
  if (key.size() != 32) return absl::InvalidArgumentError("AES-256-GCM needs a 32-byte key");
  if (a.size() > INT_MAX / 2 || b.size() > INT_MAX / 2) {
    return absl::InvalidArgumentError("AES-256-GCM input too large");
  }
  return absl::OkStatus();
}

// Seals into `out`, whose first kGcmNonceSize bytes already hold the nonce.
absl::Status SealWithNonce(const SecretBytes& key, std::string_view plaintext,
                           std::string_view associated_data, std::string* out) {
  absl::Status st = CheckSizes(key, plaintext, associated_data);
  if (!st.ok()) return st;
  size_t size = kGcmNonceSize + plaintext.size() + kGcmTagSize;
  if (out->size() != size) out->resize(size);  // reused: no fill when the size is the same
  std::string_view nonce(out->data(), kGcmNonceSize);
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  auto* ct = reinterpret_cast<unsigned char*>(out->data() + kGcmNonceSize);
  int len = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), U(nonce)) != 1 ||
      (!associated_data.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(associated_data),
                         static_cast<int>(associated_data.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), ct, &len, U(plaintext), static_cast<int>(plaintext.size())) !=
          1 ||
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagSize, ct + plaintext.size()) !=
          1) {
    return absl::InternalError("OpenSSL AES-256-GCM encryption failed");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> GcmSealWithNonceForTest(const SecretBytes& key, std::string_view nonce,
                                                    std::string_view plaintext,
                                                    std::string_view associated_data) {
  if (nonce.size() != kGcmNonceSize)
    return absl::InvalidArgumentError("GCM nonce must be 12 bytes");
  std::string out(nonce);
  absl::Status st = SealWithNonce(key, plaintext, associated_data, &out);
  if (!st.ok()) return st;
  return out;
}

absl::Status GcmSealInto(const SecretBytes& key, std::string_view plaintext,
                         std::string_view associated_data, std::string* out) {
  auto nonce = RandomString(kGcmNonceSize);
  if (!nonce.ok()) return nonce.status();
  if (out->size() < kGcmNonceSize) out->resize(kGcmNonceSize);
  memcpy(out->data(), nonce->data(), kGcmNonceSize);
  return SealWithNonce(key, plaintext, associated_data, out);
}

absl::StatusOr<std::string> GcmSeal(const SecretBytes& key, std::string_view plaintext,
                                    std::string_view associated_data) {
  std::string out;
  absl::Status st = GcmSealInto(key, plaintext, associated_data, &out);
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<size_t> GcmOpenInto(const SecretBytes& key, std::string_view sealed,
                                   std::string_view associated_data, uint8_t* out,
                                   size_t capacity) {
  absl::Status st = CheckSizes(key, sealed, associated_data);
  if (!st.ok()) return st;
  if (sealed.size() < kGcmNonceSize + kGcmTagSize) {
    return absl::DataLossError("sealed record is shorter than nonce and tag");
  }
  std::string_view nonce = sealed.substr(0, kGcmNonceSize);
  std::string_view ct = sealed.substr(kGcmNonceSize, sealed.size() - kGcmNonceSize - kGcmTagSize);
  if (ct.size() > capacity) return absl::InvalidArgumentError("GCM output buffer too small");
  std::string tag(sealed.substr(sealed.size() - kGcmTagSize));
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), U(nonce)) != 1 ||
      (!associated_data.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(associated_data),
                         static_cast<int>(associated_data.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), out, &len, U(ct), static_cast<int>(ct.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize, tag.data()) != 1) {
    return absl::InternalError("OpenSSL AES-256-GCM decryption failed");
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), out + len, &final_len) != 1) {
    return absl::DataLossError(
        "authentication failed: wrong key, wrong associated data, or the record was altered");
  }
  return ct.size();
}

absl::StatusOr<SecretBytes> GcmOpen(const SecretBytes& key, std::string_view sealed,
                                    std::string_view associated_data) {
  SecretBytes out(sealed.size() >= kGcmNonceSize + kGcmTagSize
                      ? sealed.size() - kGcmNonceSize - kGcmTagSize
                      : 0);
  auto n = GcmOpenInto(key, sealed, associated_data, out.data(), out.size());
  if (!n.ok()) return n.status();
  return out;
}

}  // namespace keyward
