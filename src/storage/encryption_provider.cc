#include "storage/encryption_provider.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "crypto/aes_ctr.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/bytes.h"

namespace keyward {
namespace {

constexpr char kFileMagic[] = "KWENCF01";
constexpr uint32_t kHeaderVersion = 1;
constexpr size_t kCheckedPart = 32;
constexpr size_t kHeaderChecksumSize = 8;

// Holds the data key alive for as long as the file is open.
class CtrFileStream : public rocksdb::BlockAccessCipherStream {
 public:
  CtrFileStream(std::shared_ptr<const DataKey> key, std::unique_ptr<CtrCipher> cipher)
      : key_(std::move(key)), cipher_(std::move(cipher)) {}

  size_t BlockSize() override { return kAesBlockSize; }
  rocksdb::Status Encrypt(uint64_t offset, char* data, size_t size) override {
    return Apply(offset, data, size);
  }
  rocksdb::Status Decrypt(uint64_t offset, char* data, size_t size) override {
    return Apply(offset, data, size);
  }

 protected:
  void AllocateScratch(std::string& scratch) override { scratch.clear(); }
  rocksdb::Status EncryptBlock(uint64_t index, char* data, char*) override {
    return Apply(index * kAesBlockSize, data, kAesBlockSize);
  }
  rocksdb::Status DecryptBlock(uint64_t index, char* data, char*) override {
    return Apply(index * kAesBlockSize, data, kAesBlockSize);
  }

 private:
  rocksdb::Status Apply(uint64_t offset, char* data, size_t size) {
    absl::Status st = cipher_->Apply(offset, reinterpret_cast<uint8_t*>(data), size);
    if (!st.ok()) return rocksdb::Status::IOError(std::string(st.message()));
    return rocksdb::Status::OK();
  }

  std::shared_ptr<const DataKey> key_;
  std::unique_ptr<CtrCipher> cipher_;
};

}  // namespace

std::string EncodeFileHeader(const FileHeader& h) {
  std::string out(kFileMagic, 8);
  PutU32(&out, kHeaderVersion);
  PutU32(&out, h.data_key_id);
  out.append(reinterpret_cast<const char*>(h.iv), sizeof(h.iv));
  out.append(Sha256(out).substr(0, kHeaderChecksumSize));
  out.resize(kFileHeaderSize, '\0');
  return out;
}

absl::StatusOr<FileHeader> ParseFileHeader(std::string_view bytes) {
  if (bytes.size() < kCheckedPart + kHeaderChecksumSize) {
    return absl::DataLossError("encryption header is truncated");
  }
  if (bytes.substr(0, 8) != std::string_view(kFileMagic, 8)) {
    return absl::DataLossError("file is not a keyward-encrypted file (bad header magic)");
  }
  if (Sha256(bytes.substr(0, kCheckedPart)).substr(0, kHeaderChecksumSize) !=
      bytes.substr(kCheckedPart, kHeaderChecksumSize)) {
    return absl::DataLossError("encryption header is damaged (checksum mismatch)");
  }
  if (GetU32(bytes.data() + 8) != kHeaderVersion) {
    return absl::DataLossError("encryption header version is not supported");
  }
  FileHeader h;
  h.data_key_id = GetU32(bytes.data() + 12);
  std::memcpy(h.iv, bytes.data() + 16, sizeof(h.iv));
  return h;
}

rocksdb::Status KeywardEncryptionProvider::CreateNewPrefix(const std::string& fname, char* prefix,
                                                           size_t prefix_length) const {
  if (prefix_length != kFileHeaderSize) {
    return rocksdb::Status::InvalidArgument("unexpected encryption prefix length for " + fname);
  }
  FileHeader h;
  h.data_key_id = dictionary_->Current()->id;
  absl::Status st = FillRandom(h.iv, sizeof(h.iv));
  if (!st.ok()) return rocksdb::Status::IOError(std::string(st.message()));
  std::string encoded = EncodeFileHeader(h);
  std::memcpy(prefix, encoded.data(), kFileHeaderSize);
  return rocksdb::Status::OK();
}

rocksdb::Status KeywardEncryptionProvider::AddCipher(const std::string&, const char*, size_t,
                                                     bool) {
  return rocksdb::Status::NotSupported("keyward data keys come from the cluster's key dictionary");
}

rocksdb::Status KeywardEncryptionProvider::CreateCipherStream(
    const std::string& fname, const rocksdb::EnvOptions&, rocksdb::Slice& prefix,
    std::unique_ptr<rocksdb::BlockAccessCipherStream>* result) {
  auto header = ParseFileHeader(std::string_view(prefix.data(), prefix.size()));
  if (!header.ok()) {
    return rocksdb::Status::Corruption(fname + ": " + std::string(header.status().message()));
  }
  std::shared_ptr<const DataKey> key = dictionary_->Find(header->data_key_id);
  if (key == nullptr) {
    return rocksdb::Status::Corruption(absl::StrCat(fname, ": data key ", header->data_key_id,
                                                    " is not in this cluster's key dictionary"));
  }
  auto cipher = CtrCipher::New(key->key, header->iv);
  if (!cipher.ok()) return rocksdb::Status::IOError(std::string(cipher.status().message()));
  *result = std::make_unique<CtrFileStream>(std::move(key), *std::move(cipher));
  return rocksdb::Status::OK();
}

}  // namespace keyward
