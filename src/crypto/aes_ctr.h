#pragma once
// AES-256-CTR keystream that can start at any byte offset, for file encryption.
// The counter block for byte offset o is IV + floor(o / 16) (128-bit big-endian add), the same
// layout as NIST SP 800-38A, so a file can be read or written at any position.
//
// One CtrCipher owns one EVP context with the key schedule expanded once; Apply() reuses it and
// processes the whole buffer in one EVP call (the stock RocksDB stream does 16 bytes per call).
// Thread-safe: concurrent Apply() calls are serialised on the cached context or, when it is busy,
// use a temporary context.

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace keyward {

inline constexpr size_t kAes256KeySize = 32;
inline constexpr size_t kAesBlockSize = 16;

class CtrCipher {
 public:
  static absl::StatusOr<std::unique_ptr<CtrCipher>> New(const SecretBytes& key,
                                                        const uint8_t iv[kAesBlockSize]);
  ~CtrCipher();
  CtrCipher(const CtrCipher&) = delete;
  CtrCipher& operator=(const CtrCipher&) = delete;

  // XORs `len` bytes at `data` in place with the keystream starting at byte `offset`.
  // Encryption and decryption are the same operation.
  absl::Status Apply(uint64_t offset, uint8_t* data, size_t len);

 private:
  CtrCipher() = default;
  absl::Status ApplyWith(EVP_CIPHER_CTX* ctx, uint64_t offset, uint8_t* data, size_t len);
  // Runs the keystream from where `ctx` stands, which must be byte `offset`.
  absl::Status Update(EVP_CIPHER_CTX* ctx, uint64_t offset, uint8_t* data, size_t len);

  static constexpr uint64_t kUnknownOffset = ~uint64_t{0};

  SecretBytes key_;
  uint8_t iv_[kAesBlockSize] = {};
  std::mutex mu_;
  EVP_CIPHER_CTX* ctx_ = nullptr;  // guarded by mu_
  // The byte offset ctx_'s keystream stands at after the last successful call (guarded by mu_).
  uint64_t next_offset_ = kUnknownOffset;
};

}  // namespace keyward
