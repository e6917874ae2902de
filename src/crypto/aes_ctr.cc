#include "crypto/aes_ctr.h"

#include <openssl/crypto.h>

#include <climits>
#include <cstring>

namespace keyward {
namespace {

// counter = iv + blocks, as a 128-bit big-endian integer.
void CounterAt(const uint8_t iv[kAesBlockSize], uint64_t blocks, uint8_t out[kAesBlockSize]) {
  std::memcpy(out, iv, kAesBlockSize);
  uint64_t carry = blocks;
  for (int i = kAesBlockSize - 1; i >= 0 && carry != 0; --i) {
    uint64_t sum = static_cast<uint64_t>(out[i]) + (carry & 0xff);
    out[i] = static_cast<uint8_t>(sum);
    carry = (carry >> 8) + (sum >> 8);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CtrCipher>> CtrCipher::New(const SecretBytes& key,
                                                          const uint8_t iv[kAesBlockSize]) {
  if (key.size() != kAes256KeySize) {
    return absl::InvalidArgumentError("AES-256-CTR needs a 32-byte key");
  }
  std::unique_ptr<CtrCipher> c(new CtrCipher());
  c->key_ = key.Clone();
  std::memcpy(c->iv_, iv, kAesBlockSize);
  c->ctx_ = EVP_CIPHER_CTX_new();
  if (c->ctx_ == nullptr ||
      EVP_EncryptInit_ex(c->ctx_, EVP_aes_256_ctr(), nullptr, c->key_.data(), c->iv_) != 1) {
    return absl::InternalError("OpenSSL could not set up AES-256-CTR");
  }
  return c;
}

CtrCipher::~CtrCipher() { EVP_CIPHER_CTX_free(ctx_); }

absl::Status CtrCipher::ApplyWith(EVP_CIPHER_CTX* ctx, uint64_t offset, uint8_t* data, size_t len) {
  // Positioning costs about as much as encrypting 500 bytes (OpenSSL 3 re-runs the provider's
  // init); a write stream (WAL, SST, compaction output) and a sequential reader ask for the
  // byte right after the previous call, where the context already stands.
  if (ctx == ctx_ && offset == next_offset_) return Update(ctx, offset, data, len);
  if (ctx == ctx_) next_offset_ = kUnknownOffset;  // until the context is positioned again
  uint8_t counter[kAesBlockSize];
  CounterAt(iv_, offset / kAesBlockSize, counter);
  // Re-keying only the IV keeps the expanded key schedule.
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, counter) != 1) {
    return absl::InternalError("OpenSSL could not reset the CTR counter");
  }
  size_t skip = offset % kAesBlockSize;
  if (skip != 0) {
    uint8_t discard[kAesBlockSize] = {};
    int out_len = 0;
    if (EVP_EncryptUpdate(ctx, discard, &out_len, discard, static_cast<int>(skip)) != 1) {
      return absl::InternalError("OpenSSL CTR update failed");
    }
  }
  return Update(ctx, offset, data, len);
}

absl::Status CtrCipher::Update(EVP_CIPHER_CTX* ctx, uint64_t offset, uint8_t* data, size_t len) {
  if (ctx == ctx_) next_offset_ = kUnknownOffset;  // until this call has succeeded
  const uint64_t end = offset + len;
  while (len > 0) {
    int chunk = static_cast<int>(len > (1u << 30) ? (1u << 30) : len);
    int out_len = 0;
    if (EVP_EncryptUpdate(ctx, data, &out_len, data, chunk) != 1 || out_len != chunk) {
      return absl::InternalError("OpenSSL CTR update failed");
    }
    data += chunk;
    len -= static_cast<size_t>(chunk);
  }
  if (ctx == ctx_) next_offset_ = end;
  return absl::OkStatus();
}

absl::Status CtrCipher::Apply(uint64_t offset, uint8_t* data, size_t len) {
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (lock.owns_lock()) return ApplyWith(ctx_, offset, data, len);
  // Another thread is using the cached context; a short-lived one keeps readers from queueing.
  EVP_CIPHER_CTX* tmp = EVP_CIPHER_CTX_new();
  if (tmp == nullptr ||
      EVP_EncryptInit_ex(tmp, EVP_aes_256_ctr(), nullptr, key_.data(), iv_) != 1) {
    EVP_CIPHER_CTX_free(tmp);
    return absl::InternalError("OpenSSL could not set up AES-256-CTR");
  }
  absl::Status st = ApplyWith(tmp, offset, data, len);
  EVP_CIPHER_CTX_free(tmp);
  return st;
}

}  // namespace keyward
