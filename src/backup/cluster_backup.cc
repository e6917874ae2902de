#include "backup/cluster_backup.h"

#include <openssl/evp.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "rocksdb/env_encryption.h"
#include "rocksdb/file_system.h"
#include "storage/encryption_provider.h"
#include "storage/key_dictionary.h"
#include "util/bytes.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

// Streaming SHA-256 (crypto/sha256.h is one-shot; files here are up to gigabytes).
class Sha256Stream {
 public:
  Sha256Stream() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256Stream() { EVP_MD_CTX_free(ctx_); }
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::string_view d) { EVP_DigestUpdate(ctx_, d.data(), d.size()); }
  std::string FinishHex() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, out, &len);
    return HexEncode(std::string_view(reinterpret_cast<const char*>(out), len));
  }

 private:
  EVP_MD_CTX* ctx_;
};

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

absl::Status IoError(const std::string& what, const rocksdb::IOStatus& s) {
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

absl::StatusOr<BackupSummary> WriteBackup(ClusterStore& store, MasterKeyProvider& provider,
                                          BackupDestination& dest, const BackupJob& job,
                                          const BackupProgress& progress) {
  RETURN_IF_ERROR(store.CreateCheckpoint(job.checkpoint_dir));
  std::vector<std::pair<std::string, uint64_t>> files;
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(job.checkpoint_dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    if (!IsSafeBackupFileName(name)) {
      return absl::InternalError(absl::StrCat("checkpoint holds an unexpected file '", name, "'"));
    }
    uint64_t raw = e.file_size(ec);
    files.emplace_back(name, raw);
    total += raw > kFileHeaderSize ? raw - kFileHeaderSize : 0;  // progress estimate only
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list the checkpoint: ", ec.message()));
  std::sort(files.begin(), files.end());

  ASSIGN_OR_RETURN(SecretBytes key, RandomSecret(kBackupKeySize));
  BackupManifest m;
  m.backup_id = job.backup_id;
  m.cluster_id = job.cluster_id;
  m.project_id = job.project_id;
  m.key_record_id = job.key_record_id;
  m.created_at = job.created_at;
  m.chunk_size = job.chunk_size;
  ASSIGN_OR_RETURN(m.wrapped_key, provider.Wrap(key, BackupWrapContext(job.backup_id)));

  uint64_t done = 0;
  if (progress) progress(0, total);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& name = files[i].first;
    BackupFileEntry entry{name, 0, "", 0};
    Sha256Stream sha;
    uint64_t index = 0;
    RETURN_IF_ERROR(store.ReadDecrypted(
        job.checkpoint_dir + "/" + name, job.chunk_size,
        [&](uint64_t size, std::string_view piece) -> absl::Status {
          if (store.stopping()) {
            return absl::CancelledError(absl::StrCat(
                "cluster ", job.cluster_id,
                " was closed during the backup; back it up again once it is available"));
          }
          uint32_t count = BackupChunkCount(size, job.chunk_size);
          bool last = index + 1 == count;
          ASSIGN_OR_RETURN(std::string sealed,
                           SealBackupChunk(key, job.backup_id, name, index, last, piece));
          RETURN_IF_ERROR(dest.Put(BackupChunkObject(job.backup_id, i, index), sealed));
          sha.Update(piece);
          entry.size = size;
          entry.chunks = count;
          ++index;
          done += piece.size();
          if (progress) progress(done, std::max(done, total));
          return absl::OkStatus();
        }));
    if (index != entry.chunks) {
      return absl::InternalError(absl::StrCat(name, " changed while it was backed up"));
    }
    entry.sha256_hex = sha.FinishHex();
    m.files.push_back(std::move(entry));
  }
  // The manifest last: only now is the backup complete.
  ASSIGN_OR_RETURN(std::string sealed_manifest, SealBackupManifest(m, key));
  RETURN_IF_ERROR(dest.Put(BackupManifestObject(job.backup_id), sealed_manifest));
  BackupSummary out;
  out.bytes = done;
  out.files = m.files.size();
  out.key_id = m.wrapped_key.key_id;
  out.key_version = m.wrapped_key.key_version;
  if (progress) progress(done, done);
  return out;
}

absl::Status RestoreFiles(BackupDestination& dest, const OpenedBackupManifest& opened,
                          rocksdb::FileSystem& fs, const std::string& target_dir,
                          const BackupProgress& progress) {
  const BackupManifest& m = opened.manifest;
  const std::string& id = m.backup_id;
  uint64_t total = 0, done = 0;
  for (const auto& f : m.files) total += f.size;
  if (progress) progress(0, total);
  for (size_t i = 0; i < m.files.size(); ++i) {
    const BackupFileEntry& f = m.files[i];
    std::string path = target_dir + "/" + f.name;
    std::unique_ptr<rocksdb::FSWritableFile> out;
    rocksdb::IOOptions io;
    rocksdb::IOStatus s = fs.NewWritableFile(path, rocksdb::FileOptions(), &out, nullptr);
    if (!s.ok()) return IoError(absl::StrCat("cannot create ", path), s);
    Sha256Stream sha;
    uint64_t size = 0;
    for (uint32_t c = 0; c < f.chunks; ++c) {
      bool last = c + 1 == f.chunks;
      auto sealed = dest.Get(BackupChunkObject(id, i, c));
      if (!sealed.ok()) {
        return absl::DataLossError(absl::StrCat("backup ", id, " is incomplete: chunk ", c,
                                                " of file ", f.name,
                                                " cannot be read: ", sealed.status().message()));
      }
      ASSIGN_OR_RETURN(SecretBytes plain,
                       OpenBackupChunk(opened.key, id, f.name, c, last, *sealed));
      if ((!last && plain.size() != m.chunk_size) || plain.size() > m.chunk_size) {
        return absl::DataLossError(
            absl::StrCat("backup ", id, ": chunk ", c, " of file ", f.name, " has the wrong size"));
      }
      sha.Update(plain.view());
      size += plain.size();
      s = out->Append(rocksdb::Slice(reinterpret_cast<const char*>(plain.data()), plain.size()), io,
                      nullptr);
      if (!s.ok()) return IoError(absl::StrCat("cannot write ", path), s);
      done += plain.size();
      if (progress) progress(done, total);
    }
    if (size != f.size || sha.FinishHex() != f.sha256_hex) {
      return absl::DataLossError(absl::StrCat("backup ", id, " failed verification: file ", f.name,
                                              " does not match its size or SHA-256 in the "
                                              "manifest"));
    }
    s = out->Sync(io, nullptr);
    if (s.ok()) s = out->Close(io, nullptr);
    if (!s.ok()) return IoError(absl::StrCat("cannot write ", path), s);
  }
  return FsyncDirectory(target_dir);
}

}  // namespace

absl::StatusOr<BackupSummary> BackUpCluster(ClusterStore& store, MasterKeyProvider& provider,
                                            BackupDestination& dest, const BackupJob& job,
                                            const BackupProgress& progress) {
  if (job.chunk_size == 0) return absl::InvalidArgumentError("backup chunk size must be > 0");
  auto out = WriteBackup(store, provider, dest, job, progress);
  RemoveTree(job.checkpoint_dir);
  if (!out.ok()) DeleteBackupObjects(dest, job.backup_id).IgnoreError();
  return out;
}

absl::StatusOr<BackupManifest> RestoreBackup(BackupDestination& dest, MasterKeyProvider& provider,
                                             const std::string& backup_id,
                                             const std::string& new_cluster_id,
                                             const std::string& target_dir, int64_t now_unix,
                                             const BackupProgress& progress) {
  std::error_code ec;
  if (fs::exists(target_dir, ec)) {
    return absl::AlreadyExistsError(absl::StrCat("restore target ", target_dir, " exists"));
  }
  auto manifest_bytes = dest.Get(BackupManifestObject(backup_id));
  if (!manifest_bytes.ok()) {
    if (absl::IsNotFound(manifest_bytes.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("backup ", backup_id, " is not complete (no manifest in ", dest.Describe(),
                       "); it cannot be restored"));
    }
    return manifest_bytes.status();
  }
  ASSIGN_OR_RETURN(OpenedBackupManifest opened,
                   OpenBackupManifest(*manifest_bytes, backup_id, provider));
  absl::Status st = MakeDirs(target_dir, 0700);
  if (st.ok()) {
    auto dict = KeyDictionary::Create(target_dir + "/" + KeyDictionary::kFileName, new_cluster_id,
                                      provider, static_cast<uint64_t>(now_unix));
    if (dict.ok()) {
      std::shared_ptr<KeyDictionary> shared = *std::move(dict);
      auto fs = rocksdb::NewEncryptedFS(rocksdb::FileSystem::Default(),
                                        std::make_shared<KeywardEncryptionProvider>(shared));
      st = RestoreFiles(dest, opened, *fs, target_dir, progress);
    } else {
      st = dict.status();
    }
  }
  if (!st.ok()) {
    RemoveTree(target_dir);
    return st;
  }
  return std::move(opened.manifest);
}

absl::Status DeleteBackupObjects(BackupDestination& dest, const std::string& backup_id) {
  RETURN_IF_ERROR(dest.Delete(BackupManifestObject(backup_id)));
  return dest.DeleteAll(backup_id + "/");
}

}  // namespace keyward
