#pragma once
// keyward's RocksDB EncryptionProvider: every file RocksDB writes through the encrypted file
// system starts with a 4096-byte plaintext header and continues as AES-256-CTR ciphertext under
// one of the cluster's data keys, with a random per-file IV.
//
// File header (little-endian), GetPrefixLength() = 4096 bytes so direct I/O stays aligned:
//   0  8  magic "KWENCF01"
//   8  4  u32 header version (1)
//   12 4  u32 data-key id in the cluster's KeyDictionary
//   16 16 IV (RAND_bytes); counter for physical offset o is IV + o/16
//   32 8  first 8 bytes of SHA-256(bytes 0..32): detects a damaged header
//   40 .. zero
// Integrity of the contents comes from RocksDB's own block and record checksums over the
// plaintext: a flipped ciphertext byte flips the same plaintext bit and fails them.
// Thread-safe.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "rocksdb/env_encryption.h"
#include "storage/key_dictionary.h"

namespace keyward {

inline constexpr size_t kFileHeaderSize = 4096;

struct FileHeader {
  uint32_t data_key_id = 0;
  uint8_t iv[16] = {};
};

// Parses and checks a file header; used by the provider and the fuzzer.
absl::StatusOr<FileHeader> ParseFileHeader(std::string_view bytes);
std::string EncodeFileHeader(const FileHeader& h);  // exactly kFileHeaderSize bytes

class KeywardEncryptionProvider : public rocksdb::EncryptionProvider {
 public:
  static constexpr const char* kClassName() { return "keyward"; }

  explicit KeywardEncryptionProvider(std::shared_ptr<KeyDictionary> dictionary)
      : dictionary_(std::move(dictionary)) {}

  const char* Name() const override { return kClassName(); }
  size_t GetPrefixLength() const override { return kFileHeaderSize; }
  rocksdb::Status CreateNewPrefix(const std::string& fname, char* prefix,
                                  size_t prefix_length) const override;
  rocksdb::Status AddCipher(const std::string& descriptor, const char* cipher, size_t len,
                            bool for_write) override;
  rocksdb::Status CreateCipherStream(
      const std::string& fname, const rocksdb::EnvOptions& options, rocksdb::Slice& prefix,
      std::unique_ptr<rocksdb::BlockAccessCipherStream>* result) override;
  std::string GetMarker() const override { return "KWENCF01"; }

 private:
  std::shared_ptr<KeyDictionary> dictionary_;
};

}  // namespace keyward
