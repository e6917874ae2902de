#include "backup/backup_format.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm.h"
#include "util/bytes.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr std::string_view kMagic = "KWBACKM1";
constexpr uint32_t kVersion = 1;
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
  if (*version != kVersion) {
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

absl::StatusOr<BackupManifest> ParseBody(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
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
    BackupFileEntry e{f["name"].get<std::string>(), f["size"].get<uint64_t>(),
                      f["sha256"].get<std::string>(), 0};
    uint64_t chunks = f["chunks"].get<uint64_t>();
    if (!IsSafeBackupFileName(e.name)) return bad("unsafe file name");
    if (chunks != BackupChunkCount(e.size, m.chunk_size)) return bad("chunk count");
    e.chunks = static_cast<uint32_t>(chunks);
    m.files.push_back(std::move(e));
  }
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

absl::StatusOr<SecretBytes> OpenBackupChunk(const SecretBytes& key, std::string_view backup_id,
                                            std::string_view file_name, uint64_t index, bool last,
                                            std::string_view sealed) {
  auto opened = GcmOpen(key, sealed, ChunkAad(backup_id, file_name, index, last));
  if (!opened.ok()) {
    return absl::DataLossError(absl::StrCat(
        "backup ", std::string(backup_id), " failed authentication: chunk ", index, " of file ",
        std::string(file_name),
        " was altered, moved, truncated or comes from another backup; this backup cannot be "
        "restored (restore another backup of the cluster)"));
  }
  return opened;
}

absl::StatusOr<std::string> SealBackupManifest(const BackupManifest& m, const SecretBytes& key) {
  json files = json::array();
  for (const auto& f : m.files) {
    files.push_back(
        {{"name", f.name}, {"size", f.size}, {"sha256", f.sha256_hex}, {"chunks", f.chunks}});
  }
  json body = {{"backup_id", m.backup_id},
               {"cluster_id", m.cluster_id},
               {"project_id", m.project_id},
               {"key_record_id", m.key_record_id},
               {"created_at", m.created_at},
               {"chunk_size", m.chunk_size},
               {"files", files}};
  std::string header = ManifestHeader(m.backup_id, m.wrapped_key);
  ASSIGN_OR_RETURN(std::string sealed,
                   GcmSeal(key, body.dump(), absl::StrCat("keyward-backup-manifest:", header)));
  std::string out = header;
  PutLengthPrefixed(&out, sealed);
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
  std::string text(body->view());
  ASSIGN_OR_RETURN(BackupManifest m, ParseBody(text));
  if (m.backup_id != expected) {
    return absl::DataLossError(absl::StrCat(
        "backup ", expected, " failed authentication: its manifest names backup ", m.backup_id));
  }
  m.wrapped_key = std::move(h.wrapped);
  return OpenedBackupManifest{std::move(m), *std::move(key)};
}

}  // namespace keyward
