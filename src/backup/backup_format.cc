#include "backup/backup_format.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm.h"
#include "crypto/random.h"
#include "util/bytes.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr std::string_view kMagic = "KWBACKM1";
constexpr uint32_t kVersion = 2;  // 2: shared file objects; 1 is still read
constexpr size_t kMaxId = 256;
constexpr size_t kMaxWrapped = 64 << 10;
constexpr size_t kMaxBody = 64 << 20;

std::string ChunkAad(std::string_view backup_id, std::string_view file_name, uint64_t index,
                     bool last) {
  std::string aad = "keyward-backup-chunk:";
  PutLengthPrefixed(&aad, backup_id);
  PutLengthPrefixed(&aad, file_name);
  PutU64(&aad, index);
  aad.push_back(last ? 1 : 0);
  return aad;
}

std::string FileChunkAad(std::string_view object, uint64_t file_size, uint64_t index, bool last) {
  std::string aad = "keyward-backup-file-chunk:";
  PutLengthPrefixed(&aad, object);
  PutU64(&aad, file_size);
  PutU64(&aad, index);
  aad.push_back(last ? 1 : 0);
  return aad;
}

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string ManifestHeader(std::string_view backup_id, const WrappedKey& wrapped) {
  std::string out(kMagic);
  PutU32(&out, kVersion);
  PutLengthPrefixed(&out, backup_id);
  PutLengthPrefixed(&out, wrapped.Serialize());
  return out;
}

struct ParsedHeader {
  std::string backup_id;
  WrappedKey wrapped;
  std::string_view header;  // bytes before the body's length field
  std::string_view sealed_body;
};

absl::StatusOr<ParsedHeader> ParseHeader(std::string_view bytes) {
  auto bad = [](const char* what) {
    return absl::DataLossError(
        absl::StrCat("backup manifest is damaged or not a keyward backup manifest (", what, ")"));
  };
  if (bytes.substr(0, kMagic.size()) != kMagic) return bad("wrong magic");
  ByteReader r(bytes.substr(kMagic.size()));
  auto version = r.U32();
  if (!version.ok()) return bad("truncated");
  if (*version != kVersion && *version != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "backup manifest has format version ", *version, "; this keyward reads version ", kVersion,
        ": restore it with a newer keyward"));
  }
  auto id = r.LengthPrefixed(kMaxId);
  auto wrapped = id.ok() ? r.LengthPrefixed(kMaxWrapped) : id;
  if (!wrapped.ok()) return bad("truncated header");
  ParsedHeader h;
  h.backup_id.assign(*id);
  auto wk = WrappedKey::Parse(*wrapped);
  if (!wk.ok()) return bad("wrapped backup key unreadable");
  h.wrapped = *std::move(wk);
  h.header = bytes.substr(0, kMagic.size() + r.position());
  auto body = r.LengthPrefixed(kMaxBody);
  if (!body.ok()) return bad("truncated body");
  if (r.remaining() != 0) return bad("trailing bytes");
  h.sealed_body = *body;
  return h;
}

// File and data keys sit in the body's JSON as hex: those strings are wiped before the JSON is
// freed.
void WipeFileKeys(json& j) {
  if (!j.is_object()) return;
  for (const char* list : {"files", "data_keys"}) {
    if (!j.contains(list) || !j[list].is_array()) continue;
    for (json& f : j[list]) {
      if (f.is_object() && f.contains("key") && f["key"].is_string()) {
        WipeString(f["key"].get_ref<std::string&>());
      }
    }
  }
}

// kBackupKeySize bytes from lower-case hex (checked by the caller), into wiped memory.
std::shared_ptr<const SecretBytes> KeyFromHex(const std::string& hex) {
  auto key = std::make_shared<SecretBytes>(kBackupKeySize);
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  uint8_t* out = key->data();
  for (size_t k = 0; k < kBackupKeySize; ++k) {
    out[k] = static_cast<uint8_t>(nibble(hex[2 * k]) << 4 | nibble(hex[2 * k + 1]));
  }
  return key;
}

// The optional data-key section (mariadb backups).
absl::Status ParseDataKeys(const json& j, BackupManifest& m) {
  auto bad = [](const char* what) {
    return absl::DataLossError(absl::StrCat("backup manifest body is malformed (", what, ")"));
  };
  if (!j.contains("data_keys") && !j.contains("current_data_key")) return absl::OkStatus();
  if (!j.contains("data_keys") || !j["data_keys"].is_array() || j["data_keys"].empty() ||
      !j.contains("current_data_key") || !j["current_data_key"].is_number_unsigned()) {
    return bad("data keys");
  }
  uint64_t current = j["current_data_key"].get<uint64_t>();
  bool current_found = false;
  for (const json& k : j["data_keys"]) {
    if (!k.is_object() || !k.contains("id") || !k["id"].is_number_unsigned() ||
        !k.contains("created") || !k["created"].is_number_unsigned() || !k.contains("key") ||
        !k["key"].is_string()) {
      return bad("data key entry");
    }
    uint64_t id = k["id"].get<uint64_t>();
    if (id == 0 || id > UINT32_MAX) return bad("data key id");
    for (const BackupDataKey& seen : m.data_keys) {
      if (seen.id == id) return bad("duplicate data key id");
    }
    const std::string& hex = k["key"].get_ref<const std::string&>();
    if (hex.size() != 2 * kBackupKeySize || !IsLowerHex(hex)) return bad("data key");
    BackupDataKey d;
    d.id = static_cast<uint32_t>(id);
    d.created_unix = k["created"].get<uint64_t>();
    d.key = KeyFromHex(hex);
    current_found = current_found || id == current;
    m.data_keys.push_back(std::move(d));
  }
  if (!current_found) return bad("current data key");
  m.current_data_key = static_cast<uint32_t>(current);
  return absl::OkStatus();
}

absl::StatusOr<BackupManifest> ParseParsedBody(const json& j);

absl::StatusOr<BackupManifest> ParseBody(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto out = ParseParsedBody(j);
  WipeFileKeys(j);
  return out;
}

absl::StatusOr<BackupManifest> ParseParsedBody(const json& j) {
  auto bad = [](const char* what) {
    return absl::DataLossError(absl::StrCat("backup manifest body is malformed (", what, ")"));
  };
  if (!j.is_object()) return bad("not an object");
  BackupManifest m;
  for (auto [field, out] :
       {std::pair{"backup_id", &m.backup_id}, std::pair{"cluster_id", &m.cluster_id},
        std::pair{"project_id", &m.project_id}, std::pair{"key_record_id", &m.key_record_id}}) {
    if (!j.contains(field) || !j[field].is_string()) return bad(field);
    *out = j[field].get<std::string>();
  }
  if (!j.contains("created_at") || !j["created_at"].is_number_integer()) return bad("created_at");
  m.created_at = j["created_at"].get<int64_t>();
  if (!j.contains("chunk_size") || !j["chunk_size"].is_number_unsigned()) return bad("chunk_size");
  uint64_t chunk_size = j["chunk_size"].get<uint64_t>();
  if (chunk_size == 0 || chunk_size > (64u << 20)) return bad("chunk_size out of range");
  m.chunk_size = static_cast<uint32_t>(chunk_size);
  if (!j.contains("files") || !j["files"].is_array()) return bad("files");
  for (const json& f : j["files"]) {
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("size") ||
        !f["size"].is_number_unsigned() || !f.contains("sha256") || !f["sha256"].is_string() ||
        !f.contains("chunks") || !f["chunks"].is_number_unsigned()) {
      return bad("file entry");
    }
    BackupFileEntry e;
    e.name = f["name"].get<std::string>();
    e.size = f["size"].get<uint64_t>();
    e.sha256_hex = f["sha256"].get<std::string>();
    uint64_t chunks = f["chunks"].get<uint64_t>();
    if (!IsSafeBackupFileName(e.name)) return bad("unsafe file name");
    if (chunks != BackupChunkCount(e.size, m.chunk_size)) return bad("chunk count");
    e.chunks = static_cast<uint32_t>(chunks);
    if (f.contains("object") || f.contains("key")) {
      if (!f.contains("object") || !f["object"].is_string() || !f.contains("key") ||
          !f["key"].is_string()) {
        return bad("shared file object");
      }
      e.object = f["object"].get<std::string>();
      if (!IsBackupFileObject(m.cluster_id, e.object)) return bad("shared file object name");
      const std::string& hex = f["key"].get_ref<const std::string&>();
      if (hex.size() != 2 * kBackupKeySize || !IsLowerHex(hex)) return bad("file key");
      e.file_key = KeyFromHex(hex);
    }
    m.files.push_back(std::move(e));
  }
  RETURN_IF_ERROR(ParseDataKeys(j, m));
  return m;
}

}  // namespace

absl::StatusOr<BackupManifest> ParseBackupManifestBody(std::string_view body) {
  return ParseBody(body);
}

std::string BackupManifestObject(std::string_view backup_id) {
  return absl::StrCat(std::string(backup_id), "/manifest");
}

std::string BackupChunkObject(std::string_view backup_id, size_t file_index, uint64_t chunk) {
  char suffix[48];
  snprintf(suffix, sizeof(suffix), "/data/%06zu-%08llu", file_index,
           static_cast<unsigned long long>(chunk));
  return absl::StrCat(std::string(backup_id), suffix);
}

std::string BackupWrapContext(std::string_view backup_id) {
  return absl::StrCat("keyward-backup:", std::string(backup_id));
}

absl::StatusOr<std::string> NewBackupFileObject(std::string_view cluster_id) {
  ASSIGN_OR_RETURN(std::string id, RandomHex(16));
  return absl::StrCat("shared/", std::string(cluster_id), "/", id);
}

std::string BackupFileChunkObject(std::string_view object, uint64_t chunk) {
  char suffix[24];
  snprintf(suffix, sizeof(suffix), "/%08llu", static_cast<unsigned long long>(chunk));
  return absl::StrCat(std::string(object), suffix);
}

bool IsBackupFileObject(std::string_view cluster_id, std::string_view object) {
  std::string prefix = absl::StrCat("shared/", std::string(cluster_id), "/");
  if (!IsSafeBackupFileName(cluster_id) || object.substr(0, prefix.size()) != prefix) {
    return false;
  }
  std::string_view id = object.substr(prefix.size());
  return id.size() == 32 && IsLowerHex(id);
}

uint32_t BackupChunkCount(uint64_t size, uint32_t chunk_size) {
  if (size == 0) return 1;
  return static_cast<uint32_t>((size + chunk_size - 1) / chunk_size);
}

bool IsSafeBackupFileName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char ch : name) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

absl::StatusOr<std::string> SealBackupChunk(const SecretBytes& key, std::string_view backup_id,
                                            std::string_view file_name, uint64_t index, bool last,
                                            std::string_view plaintext) {
  return GcmSeal(key, plaintext, ChunkAad(backup_id, file_name, index, last));
}

absl::Status SealBackupChunkInto(const SecretBytes& key, std::string_view backup_id,
                                 std::string_view file_name, uint64_t index, bool last,
                                 std::string_view plaintext, std::string* out) {
  return GcmSealInto(key, plaintext, ChunkAad(backup_id, file_name, index, last), out);
}

absl::Status SealBackupFileChunkInto(const SecretBytes& file_key, std::string_view object,
                                     uint64_t file_size, uint64_t index, bool last,
                                     std::string_view plaintext, std::string* out) {
  return GcmSealInto(file_key, plaintext, FileChunkAad(object, file_size, index, last), out);
}

absl::Status ChunkRefused(std::string_view backup_id, std::string_view file_name, uint64_t index,
                          std::string_view object) {
  std::string where =
      object.empty() ? std::string() : absl::StrCat(" (shared object ", std::string(object), ")");
  return absl::DataLossError(absl::StrCat(
      "backup ", std::string(backup_id), " failed authentication: chunk ", index, " of file ",
      std::string(file_name), where,
      " was altered, moved, truncated or comes from another backup or file; this backup cannot "
      "be restored (restore another backup of the cluster)"));
}

absl::StatusOr<size_t> OpenBackupChunkInto(const SecretBytes& key, std::string_view backup_id,
                                           std::string_view file_name, uint64_t index, bool last,
                                           std::string_view sealed, SecretBytes& out) {
  auto n =
      GcmOpenInto(key, sealed, ChunkAad(backup_id, file_name, index, last), out.data(), out.size());
  if (!n.ok()) return ChunkRefused(backup_id, file_name, index, "");
  return n;
}

absl::StatusOr<size_t> OpenBackupFileChunkInto(const SecretBytes& file_key,
                                               std::string_view backup_id,
                                               std::string_view file_name, std::string_view object,
                                               uint64_t file_size, uint64_t index, bool last,
                                               std::string_view sealed, SecretBytes& out) {
  auto n = GcmOpenInto(file_key, sealed, FileChunkAad(object, file_size, index, last), out.data(),
                       out.size());
  if (!n.ok()) return ChunkRefused(backup_id, file_name, index, object);
  return n;
}

absl::StatusOr<SecretBytes> OpenBackupChunk(const SecretBytes& key, std::string_view backup_id,
                                            std::string_view file_name, uint64_t index, bool last,
                                            std::string_view sealed) {
  SecretBytes out(sealed.size() > kGcmNonceSize + kGcmTagSize
                      ? sealed.size() - kGcmNonceSize - kGcmTagSize
                      : 0);
  ASSIGN_OR_RETURN(size_t n,
                   OpenBackupChunkInto(key, backup_id, file_name, index, last, sealed, out));
  (void)n;  // the ciphertext's size: the buffer is exactly the plaintext
  return out;
}

absl::StatusOr<std::string> SealBackupFileChunk(const SecretBytes& file_key,
                                                std::string_view object, uint64_t file_size,
                                                uint64_t index, bool last,
                                                std::string_view plaintext) {
  return GcmSeal(file_key, plaintext, FileChunkAad(object, file_size, index, last));
}

absl::StatusOr<SecretBytes> OpenBackupFileChunk(const SecretBytes& file_key,
                                                std::string_view backup_id,
                                                std::string_view file_name, std::string_view object,
                                                uint64_t file_size, uint64_t index, bool last,
                                                std::string_view sealed) {
  SecretBytes out(sealed.size() > kGcmNonceSize + kGcmTagSize
                      ? sealed.size() - kGcmNonceSize - kGcmTagSize
                      : 0);
  ASSIGN_OR_RETURN(size_t n, OpenBackupFileChunkInto(file_key, backup_id, file_name, object,
                                                     file_size, index, last, sealed, out));
  (void)n;
  return out;
}

absl::StatusOr<std::string> SealBackupManifest(const BackupManifest& m, const SecretBytes& key) {
  json files = json::array();
  for (const auto& f : m.files) {
    json entry = {
        {"name", f.name}, {"size", f.size}, {"sha256", f.sha256_hex}, {"chunks", f.chunks}};
    if (!f.object.empty()) {
      if (!f.file_key || f.file_key->size() != kBackupKeySize) {
        return absl::InternalError(absl::StrCat("file ", f.name, " has no file key"));
      }
      entry["object"] = f.object;
      entry["key"] = HexEncode(f.file_key->view());
    }
    files.push_back(std::move(entry));
  }
  json body = {{"backup_id", m.backup_id},   {"cluster_id", m.cluster_id},
               {"project_id", m.project_id}, {"key_record_id", m.key_record_id},
               {"created_at", m.created_at}, {"chunk_size", m.chunk_size}};
  body["files"] = std::move(files);  // moved, not copied: its file keys are wiped below
  if (!m.data_keys.empty()) {
    // Checked before any key is hex-encoded, so no early return leaves an unwiped copy.
    bool current_found = false;
    for (const BackupDataKey& d : m.data_keys) {
      if (d.id == 0 || !d.key || d.key->size() != kBackupKeySize) {
        WipeFileKeys(body);
        return absl::InternalError(absl::StrCat("data key ", d.id, " is unset or has a bad size"));
      }
      current_found = current_found || d.id == m.current_data_key;
    }
    if (!current_found) {
      WipeFileKeys(body);
      return absl::InternalError("the current data key is not among the backup's data keys");
    }
    json keys = json::array();
    for (const BackupDataKey& d : m.data_keys) {
      json entry = {{"id", d.id}, {"created", d.created_unix}};
      entry["key"] = HexEncode(d.key->view());  // moved in, wiped with the body
      keys.push_back(std::move(entry));
    }
    body["data_keys"] = std::move(keys);
    body["current_data_key"] = m.current_data_key;
  }
  std::string header = ManifestHeader(m.backup_id, m.wrapped_key);
  std::string text = body.dump();
  WipeFileKeys(body);
  auto sealed = GcmSeal(key, text, absl::StrCat("keyward-backup-manifest:", header));
  WipeString(text);
  RETURN_IF_ERROR(sealed.status());
  std::string out = header;
  PutLengthPrefixed(&out, *sealed);
  return out;
}

absl::StatusOr<std::pair<std::string, WrappedKey>> PeekBackupManifest(std::string_view bytes) {
  ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(bytes));
  return std::pair{h.backup_id, h.wrapped};
}

absl::StatusOr<OpenedBackupManifest> OpenBackupManifest(std::string_view bytes,
                                                        std::string_view expected_backup_id,
                                                        MasterKeyProvider& provider) {
  ASSIGN_OR_RETURN(ParsedHeader h, ParseHeader(bytes));
  std::string expected(expected_backup_id);
  if (h.backup_id != expected) {
    return absl::DataLossError(
        absl::StrCat("backup ", expected, " failed authentication: its manifest belongs to backup ",
                     h.backup_id, " (replaced); this backup cannot be restored"));
  }
  auto key = provider.Unwrap(h.wrapped, BackupWrapContext(expected));
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat("cannot unwrap the key of backup ", expected, " (wrapped by ",
                                     h.wrapped.provider, " key ", h.wrapped.key_id, " version ",
                                     h.wrapped.key_version, "): ", key.status().message()));
  }
  if (key->size() != kBackupKeySize) {
    return absl::DataLossError(
        absl::StrCat("backup ", expected, ": the unwrapped backup key has the wrong size"));
  }
  auto body =
      GcmOpen(*key, h.sealed_body, absl::StrCat("keyward-backup-manifest:", std::string(h.header)));
  if (!body.ok()) {
    return absl::DataLossError(absl::StrCat(
        "backup ", expected,
        " failed authentication: its manifest was altered or sealed under another key; this "
        "backup cannot be restored"));
  }
  auto parsed = ParseBody(body->view());
  if (!parsed.ok()) return parsed.status();
  BackupManifest m = *std::move(parsed);
  if (m.backup_id != expected) {
    return absl::DataLossError(absl::StrCat(
        "backup ", expected, " failed authentication: its manifest names backup ", m.backup_id));
  }
  m.wrapped_key = std::move(h.wrapped);
  return OpenedBackupManifest{std::move(m), *std::move(key)};
}

}  // namespace keyward
