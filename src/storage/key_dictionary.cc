#include "storage/key_dictionary.h"

#include <openssl/crypto.h>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/bytes.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

constexpr char kDictMagic[] = "KWKDICT1";
constexpr size_t kMagicSize = 8;
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kDictChecksumSize = 32;
constexpr size_t kMaxFileSize = 16 * 1024 * 1024;
constexpr size_t kDataKeySize = 32;

// Hashing a 256-bit random key leaks nothing usable; the label keeps this hash from matching any
// other use of the key.
std::string KeyIdOf(const SecretBytes& key) {
  std::string input = "keyward-dictionary-key-id:";
  input.reserve(input.size() + key.size());
  input.append(key.view());
  std::string id = Sha256Hex(input).substr(0, 16);
  WipeString(input);
  return id;
}

std::string Aad(const std::string& cluster_id, std::string_view header) {
  std::string aad = absl::StrCat("keyward-dict:", cluster_id, ":");
  aad.append(header);
  return aad;
}

// Wraps `key` and unwraps the result once before anything relies on it: a wrap the KMS got
// wrong (mangled ciphertext, another key) would otherwise surface only at the next open, after
// the record it replaced is gone. Costs one unwrap per create, re-wrap or rotation, never per
// read or write.
absl::StatusOr<WrappedKey> WrapVerified(MasterKeyProvider& provider, const SecretBytes& key,
                                        const std::string& cluster_id, const char* operation) {
  ASSIGN_OR_RETURN(WrappedKey wrapped, provider.Wrap(key, cluster_id));
  auto back = provider.Unwrap(wrapped, cluster_id);
  if (!back.ok()) {
    return absl::Status(
        back.status().code(),
        absl::StrCat(operation, " of cluster ", cluster_id, ": the ",
                     std::string(provider.provider_name()), " key's new wrap does not unwrap (",
                     std::string(back.status().message()), "); nothing was changed"));
  }
  if (back->size() != key.size() || CRYPTO_memcmp(back->data(), key.data(), key.size()) != 0) {
    return absl::DataLossError(absl::StrCat(operation, " of cluster ", cluster_id, ": the ",
                                            std::string(provider.provider_name()),
                                            " key's new wrap unwraps to a different key; nothing "
                                            "was changed"));
  }
  return wrapped;
}

}  // namespace

absl::StatusOr<WrappedKey> KeyDictionary::ParseEnvelope(std::string_view file,
                                                        std::string_view* sealed_body,
                                                        std::string_view* header) {
  if (file.size() < kMagicSize + 8 + 4 + kDictChecksumSize) {
    return absl::DataLossError(absl::StrCat("key dictionary is truncated (", file.size(),
                                            " bytes); restore it from a backup"));
  }
  if (file.substr(0, kMagicSize) != std::string_view(kDictMagic, kMagicSize)) {
    return absl::DataLossError("key dictionary header is damaged (bad magic)");
  }
  std::string_view content = file.substr(0, file.size() - kDictChecksumSize);
  if (Sha256(content) != file.substr(content.size())) {
    return absl::DataLossError(
        "key dictionary is damaged (checksum mismatch); restore it from a backup");
  }
  ByteReader r(content.substr(kMagicSize));
  ASSIGN_OR_RETURN(uint32_t version, r.U32());
  if (version != kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("key dictionary format version ", version, " is not supported (want 1)"));
  }
  ASSIGN_OR_RETURN(std::string_view wrapped_bytes, r.LengthPrefixed(content.size()));
  ASSIGN_OR_RETURN(WrappedKey wrapped, WrappedKey::Parse(wrapped_bytes));
  *header = content.substr(0, kMagicSize + r.position());
  ASSIGN_OR_RETURN(*sealed_body, r.LengthPrefixed(content.size()));
  if (r.remaining() != 0) return absl::DataLossError("key dictionary has trailing bytes");
  return wrapped;
}

absl::StatusOr<std::unique_ptr<KeyDictionary>> KeyDictionary::Create(const std::string& path,
                                                                     const std::string& cluster_id,
                                                                     MasterKeyProvider& provider,
                                                                     uint64_t now_unix) {
  std::unique_ptr<KeyDictionary> d(new KeyDictionary(path, cluster_id));
  ASSIGN_OR_RETURN(SecretBytes key, RandomSecret(kDataKeySize));
  ASSIGN_OR_RETURN(WrappedKey wrapped, WrapVerified(provider, key, cluster_id, "creation"));
  std::lock_guard<std::mutex> lock(d->mu_);
  d->wrapped_ = std::move(wrapped);
  d->SetDictionaryKeyLocked(std::move(key));
  RETURN_IF_ERROR(d->AddKeyLocked(now_unix));
  return d;
}

absl::StatusOr<std::unique_ptr<KeyDictionary>> KeyDictionary::CreateWithDataKeys(
    const std::string& path, const std::string& cluster_id, MasterKeyProvider& provider,
    std::vector<std::shared_ptr<const DataKey>> keys, uint32_t current_id) {
  std::unique_ptr<KeyDictionary> d(new KeyDictionary(path, cluster_id));
  for (auto& k : keys) {
    if (!k || k->id == 0 || k->key.size() != kDataKeySize || d->keys_.count(k->id)) {
      return absl::InvalidArgumentError(
          "data keys for a new key dictionary must have unique non-zero ids and 32 bytes each");
    }
    d->keys_[k->id] = std::move(k);
  }
  if (d->keys_.count(current_id) == 0) {
    return absl::InvalidArgumentError("the current data key is not among the data keys given");
  }
  ASSIGN_OR_RETURN(SecretBytes key, RandomSecret(kDataKeySize));
  ASSIGN_OR_RETURN(WrappedKey wrapped, WrapVerified(provider, key, cluster_id, "creation"));
  std::lock_guard<std::mutex> lock(d->mu_);
  d->wrapped_ = std::move(wrapped);
  d->SetDictionaryKeyLocked(std::move(key));
  d->current_id_ = current_id;
  RETURN_IF_ERROR(d->WriteLocked(d->dictionary_key_, d->wrapped_));
  return d;
}

absl::StatusOr<std::unique_ptr<KeyDictionary>> KeyDictionary::Open(const std::string& path,
                                                                   const std::string& cluster_id,
                                                                   MasterKeyProvider& provider) {
  ASSIGN_OR_RETURN(std::string file, ReadFileToString(path, kMaxFileSize));
  std::string_view sealed, header;
  auto wrapped = ParseEnvelope(file, &sealed, &header);
  if (!wrapped.ok()) {
    return absl::Status(wrapped.status().code(),
                        absl::StrCat(path, ": ", wrapped.status().message()));
  }
  std::unique_ptr<KeyDictionary> d(new KeyDictionary(path, cluster_id));
  std::lock_guard<std::mutex> lock(d->mu_);  // uncontended; keeps the guarded-by contract
  d->wrapped_ = *std::move(wrapped);
  auto dict_key = provider.Unwrap(d->wrapped_, cluster_id);
  if (!dict_key.ok()) {
    absl::Status st(dict_key.status().code(),
                    absl::StrCat("cannot unwrap the key dictionary of cluster ", cluster_id, ": ",
                                 dict_key.status().message()));
    st.SetPayload(kUnwrapFailedPayload, absl::Cord("1"));
    return st;
  }
  d->SetDictionaryKeyLocked(*std::move(dict_key));
  auto body = GcmOpen(d->dictionary_key_, sealed, Aad(cluster_id, header));
  if (!body.ok()) {
    return absl::DataLossError(absl::StrCat("key dictionary ", path, " does not belong to cluster ",
                                            cluster_id, " or its body was altered"));
  }
  ByteReader r(body->view());
  ASSIGN_OR_RETURN(d->current_id_, r.U32());
  ASSIGN_OR_RETURN(uint32_t count, r.U32());
  for (uint32_t i = 0; i < count; ++i) {
    auto k = std::make_shared<DataKey>();
    ASSIGN_OR_RETURN(k->id, r.U32());
    ASSIGN_OR_RETURN(k->created_unix, r.U64());
    ASSIGN_OR_RETURN(std::string_view key_bytes, r.Bytes(kDataKeySize));
    k->key = SecretBytes::FromView(key_bytes);
    d->keys_[k->id] = std::move(k);
  }
  if (d->keys_.count(d->current_id_) == 0) {
    return absl::DataLossError("key dictionary names a current key it does not hold");
  }
  return d;
}

absl::Status KeyDictionary::AddKeyLocked(uint64_t now_unix) {
  auto k = std::make_shared<DataKey>();
  k->id = keys_.empty() ? 1 : keys_.rbegin()->first + 1;
  k->created_unix = now_unix;
  ASSIGN_OR_RETURN(k->key, RandomSecret(kDataKeySize));
  uint32_t previous = current_id_;
  uint32_t id = k->id;
  keys_[id] = std::move(k);
  current_id_ = id;
  absl::Status st = WriteLocked(dictionary_key_, wrapped_);
  if (!st.ok()) {  // Never hand out a key that is not on disk.
    keys_.erase(id);
    current_id_ = previous;
  }
  return st;
}

void KeyDictionary::SetDictionaryKeyLocked(SecretBytes key) {
  dictionary_key_id_ = KeyIdOf(key);
  dictionary_key_ = std::move(key);  // the move assignment wipes the previous key
}

absl::Status KeyDictionary::WriteLocked(const SecretBytes& dictionary_key,
                                        const WrappedKey& wrapped) const {
  std::string body;
  // Sized up front so appending never reallocates and leaves key bytes in a freed buffer.
  body.reserve(8 + keys_.size() * (4 + 8 + kDataKeySize));
  PutU32(&body, current_id_);
  PutU32(&body, static_cast<uint32_t>(keys_.size()));
  for (const auto& [id, k] : keys_) {
    PutU32(&body, id);
    PutU64(&body, k->created_unix);
    body.append(k->key.view());
  }
  std::string file(kDictMagic, kMagicSize);
  PutU32(&file, kFormatVersion);
  PutLengthPrefixed(&file, wrapped.Serialize());
  auto sealed = GcmSeal(dictionary_key, body, Aad(cluster_id_, file));
  WipeString(body);
  if (!sealed.ok()) return sealed.status();
  PutLengthPrefixed(&file, *sealed);
  file.append(Sha256(file));
  return WriteFileAtomically(path_, file, 0600);
}

std::shared_ptr<const DataKey> KeyDictionary::Find(uint32_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find(id);
  return it == keys_.end() ? nullptr : it->second;
}

std::shared_ptr<const DataKey> KeyDictionary::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.at(current_id_);
}

size_t KeyDictionary::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.size();
}

absl::StatusOr<bool> KeyDictionary::RotateIfOlderThan(uint64_t period_seconds, uint64_t now_unix) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto& current = keys_.at(current_id_);
  if (now_unix < current->created_unix + period_seconds) return false;
  RETURN_IF_ERROR(AddKeyLocked(now_unix));
  return true;
}

absl::StatusOr<uint32_t> KeyDictionary::AddDataKey(uint64_t now_unix) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(AddKeyLocked(now_unix));
  return current_id_;
}

WrappedKey KeyDictionary::wrapped_key() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wrapped_;
}

std::string KeyDictionary::dictionary_key_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dictionary_key_id_;
}

std::vector<uint32_t> KeyDictionary::DataKeyIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint32_t> ids;
  for (const auto& [id, k] : keys_) ids.push_back(id);
  return ids;
}

SecretBytes KeyDictionary::DictionaryKeyForTest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dictionary_key_.Clone();
}

absl::Status KeyDictionary::Rewrap(MasterKeyProvider& new_provider) {
  SecretBytes key;  // a copy: a rotation may replace (and wipe) the member while we wrap
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    key = dictionary_key_.Clone();
    generation = wrap_generation_;
  }
  ASSIGN_OR_RETURN(WrappedKey rewrapped, WrapVerified(new_provider, key, cluster_id_, "re-wrap"));
  return InstallWrap(generation, nullptr, std::move(rewrapped), "re-wrap");
}

absl::Status KeyDictionary::RotateDictionaryKey(MasterKeyProvider& provider) {
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation = wrap_generation_;
  }
  ASSIGN_OR_RETURN(SecretBytes key, RandomSecret(kDataKeySize));
  ASSIGN_OR_RETURN(WrappedKey wrapped,
                   WrapVerified(provider, key, cluster_id_, "dictionary-key rotation"));
  return InstallWrap(generation, &key, std::move(wrapped), "dictionary-key rotation");
}

absl::Status KeyDictionary::InstallWrap(uint64_t generation, SecretBytes* new_key,
                                        WrappedKey wrapped, const char* operation) {
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != wrap_generation_) {
    return absl::AbortedError(absl::StrCat(
        "the key dictionary of cluster ", cluster_id_, " was re-wrapped or its key rotated while ",
        "this ", operation, " waited for the key service; nothing was changed, run it again"));
  }
  // Write first, then swap: on a failed write memory keeps the state that is (or, after a late
  // fsync error, was) on disk, and both are complete dictionaries.
  RETURN_IF_ERROR(WriteLocked(new_key != nullptr ? *new_key : dictionary_key_, wrapped));
  wrapped_ = std::move(wrapped);
  if (new_key != nullptr) SetDictionaryKeyLocked(std::move(*new_key));
  ++wrap_generation_;
  return absl::OkStatus();
}

}  // namespace keyward
