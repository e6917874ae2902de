// Arbitrary bytes as a backup manifest object (its clear header, then the whole open path with a
// provider that unwraps to a fixed key) and as a manifest body: every outcome must be a Status,
// never a crash or an out-of-bounds read. A body that parses (shared file objects and their keys
// included, format version 2) must seal and open back to the same manifest.
#include <cstddef>
#include <cstdint>
#include <string>

#include "backup/backup_format.h"

namespace {

class FixedUnwrap : public keyward::MasterKeyProvider {
 public:
  std::string_view provider_name() const override { return "fuzz"; }
  std::string key_id() const override { return "fuzz"; }
  absl::StatusOr<keyward::WrappedKey> Wrap(const keyward::SecretBytes&, std::string_view) override {
    return absl::UnimplementedError("fuzz");
  }
  absl::StatusOr<keyward::SecretBytes> Unwrap(const keyward::WrappedKey& w,
                                              std::string_view) override {
    // The record's own ciphertext as the key when it has the right size: reaches the AEAD.
    if (w.ciphertext.size() != keyward::kBackupKeySize) return absl::DataLossError("size");
    return keyward::SecretBytes::FromView(w.ciphertext);
  }
  absl::StatusOr<keyward::KeyDescription> Describe() override {
    return absl::UnimplementedError("fuzz");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)keyward::PeekBackupManifest(bytes);
  (void)keyward::ParseBackupManifestBody(bytes);
  FixedUnwrap provider;
  if (auto peeked = keyward::PeekBackupManifest(bytes); peeked.ok()) {
    (void)keyward::OpenBackupManifest(bytes, peeked->first, provider);
  }
  if (auto m = keyward::ParseBackupManifestBody(bytes); m.ok() && m->backup_id.size() <= 256) {
    std::string raw_key(keyward::kBackupKeySize, 'k');
    m->wrapped_key.provider = "fuzz";
    m->wrapped_key.ciphertext = raw_key;  // FixedUnwrap gives it back as the key
    auto sealed = keyward::SealBackupManifest(*m, keyward::SecretBytes::FromView(raw_key));
    if (!sealed.ok()) __builtin_trap();
    auto opened = keyward::OpenBackupManifest(*sealed, m->backup_id, provider);
    if (!opened.ok() || opened->manifest.files.size() != m->files.size()) __builtin_trap();
    for (size_t i = 0; i < m->files.size(); ++i) {
      const auto& a = m->files[i];
      const auto& b = opened->manifest.files[i];
      if (a.name != b.name || a.size != b.size || a.sha256_hex != b.sha256_hex ||
          a.chunks != b.chunks || a.object != b.object || !a.file_key != !b.file_key ||
          (a.file_key && !a.file_key->Equals(*b.file_key))) {
        __builtin_trap();
      }
    }
  }
  // Also with the right magic, so the fuzzer gets past it to the field parser.
  if (size >= 8) {
    std::string file(bytes);
    file.replace(0, 8, "KWBACKM1");
    (void)keyward::PeekBackupManifest(file);
  }
  return 0;
}
