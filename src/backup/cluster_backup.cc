#include "backup/cluster_backup.h"

#include <openssl/evp.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "backup/backup_workers.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
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

// Workers sealing and putting (backup) or getting and opening (restore) chunks, and how many
// more chunks may wait for them: memory stays at a few chunks whatever the backup's size.
constexpr size_t kWorkerThreads = 3;
constexpr size_t kMaxQueuedChunks = 4;
// Buffers a pipeline may hold at once: the workers' (running and queued), the hasher's (one
// running, kMaxQueuedChunks queued; it shares the workers' buffers on a backup) and this thread's.
constexpr size_t kChunkBuffers = kWorkerThreads + 2 * kMaxQueuedChunks + 2;

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

absl::Status IoError(const std::string& what, const rocksdb::IOStatus& s) {
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

// The latest backup's shared files by name, when this backup may reuse them: empty when it has
// none or cannot be read (then every file is uploaded; reuse is an optimisation only).
std::map<std::string, BackupFileEntry> ReusableFiles(MasterKeyProvider& provider,
                                                     BackupDestination& dest,
                                                     const BackupJob& job) {
  std::map<std::string, BackupFileEntry> out;
  if (!job.refs || job.base_backup_id.empty()) return out;
  auto bytes = dest.Get(BackupManifestObject(job.base_backup_id));
  if (!bytes.ok()) return out;
  auto base = OpenBackupManifest(*bytes, job.base_backup_id, provider);
  if (!base.ok() || base->manifest.cluster_id != job.cluster_id ||
      base->manifest.chunk_size != job.chunk_size) {
    return out;
  }
  for (auto& f : base->manifest.files) {
    if (!f.object.empty()) out.emplace(f.name, std::move(f));
  }
  return out;
}

absl::StatusOr<std::string> HashFile(ClusterStore& store, const std::string& path, uint32_t piece) {
  Sha256Stream sha;
  RETURN_IF_ERROR(
      store.ReadDecrypted(path, piece, [&](uint64_t, std::string_view bytes) -> absl::Status {
        sha.Update(bytes);
        return absl::OkStatus();
      }));
  return sha.FinishHex();
}

absl::Status Stopped(const BackupJob& job) {
  return absl::CancelledError(
      absl::StrCat("cluster ", job.cluster_id,
                   " was closed during the backup; back it up again once it is available"));
}

// `new_objects` gets every shared file object this backup created (for the cleanup of a failed
// backup), before its first chunk is put.
absl::StatusOr<BackupSummary> WriteBackup(ClusterStore& store, MasterKeyProvider& provider,
                                          BackupDestination& dest, const BackupJob& job,
                                          const BackupProgress& progress,
                                          std::vector<std::string>* new_objects) {
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

  SecretBytes key;
  ASSIGN_OR_RETURN(BackupManifest m, NewBackupManifest(job, provider, &key));
  std::map<std::string, BackupFileEntry> reusable = ReusableFiles(provider, dest, job);

  BackupSummary out;
  uint64_t done = 0;
  if (progress) progress(0, total);
  // This thread reads (through the encrypted file system); one hasher thread hashes each file's
  // chunks in order, and the workers seal and put, so reading chunk n+1 overlaps hashing,
  // sealing and writing chunk n, and several puts (each fsynced) are in flight at once.
  // Declared before the workers and the hasher, which use them until they are joined.
  std::atomic<uint64_t> written{0};
  std::vector<std::string> hashes(files.size());  // the hasher's results, by file
  std::vector<size_t> hash_of;                    // m.files[k] gets hashes[hash_of[k]]
  ChunkBuffers buffers(kChunkBuffers, job.chunk_size);
  BackupWorkers workers(kWorkerThreads, kMaxQueuedChunks);
  BackupWorkers hasher(1, kMaxQueuedChunks);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& name = files[i].first;
    std::string path = job.checkpoint_dir + "/" + name;
    // SSTs never change once written: one the latest backup holds (same name, size and SHA-256)
    // is not uploaded again; this backup takes a reference to its shared object instead.
    bool sst = name.size() > 4 && name.compare(name.size() - 4, 4, ".sst") == 0;
    if (auto it = reusable.find(name); sst && it != reusable.end() &&
                                       files[i].second > kFileHeaderSize &&
                                       files[i].second - kFileHeaderSize == it->second.size) {
      if (store.stopping()) return Stopped(job);
      ASSIGN_OR_RETURN(std::string sha, HashFile(store, path, job.chunk_size));
      ASSIGN_OR_RETURN(bool held, sha == it->second.sha256_hex
                                      ? job.refs->Claim(job.backup_id, it->second.object)
                                      : absl::StatusOr<bool>(false));
      if (held) {
        done += it->second.size;
        out.files_reused++;
        out.bytes_reused += it->second.size;
        m.files.push_back(it->second);
        hash_of.push_back(SIZE_MAX);
        if (progress) progress(done, std::max(done, total));
        continue;
      }
    }
    BackupFileEntry entry;
    entry.name = name;
    std::shared_ptr<const SecretBytes> file_key;
    if (sst) {
      ASSIGN_OR_RETURN(entry.object, NewBackupFileObject(job.cluster_id));
      ASSIGN_OR_RETURN(SecretBytes k, RandomSecret(kBackupKeySize));
      entry.file_key = file_key = std::make_shared<const SecretBytes>(std::move(k));
      if (job.refs) RETURN_IF_ERROR(job.refs->Add(job.backup_id, entry.object));
      new_objects->push_back(entry.object);
    }
    auto sha = std::make_shared<Sha256Stream>();
    uint64_t index = 0;
    // Each piece is read and decrypted straight into a pooled buffer the tasks then share (no
    // copy), wiped when both are done with it.
    std::shared_ptr<ChunkBuffers::Lease> plain;
    auto into = [&] {
      plain = buffers.Take();
      return plain->bytes().data();
    };
    RETURN_IF_ERROR(store.ReadDecrypted(
        path, job.chunk_size,
        [&](uint64_t size, std::string_view piece) -> absl::Status {
          if (store.stopping()) return Stopped(job);
          uint32_t count = BackupChunkCount(size, job.chunk_size);
          bool last = index + 1 == count;
          std::string_view view(reinterpret_cast<const char*>(plain->bytes().data()), piece.size());
          RETURN_IF_ERROR(hasher.Submit([sha, plain, view] {
            sha->Update(view);
            return absl::OkStatus();
          }));
          std::string object = file_key ? BackupFileChunkObject(entry.object, index)
                                        : BackupChunkObject(job.backup_id, i, index);
          RETURN_IF_ERROR(workers.Submit([&key, &job, &dest, &name, &written, plain, file_key,
                                          file_object = entry.object, object = std::move(object),
                                          view, size, index, last]() -> absl::Status {
            // Each worker seals into its own reused buffer (ciphertext: nothing to wipe), so no
            // chunk costs an allocation and the page faults of fresh memory.
            thread_local std::string sealed;
            RETURN_IF_ERROR(file_key ? SealBackupFileChunkInto(*file_key, file_object, size, index,
                                                               last, view, &sealed)
                                     : SealBackupChunkInto(key, job.backup_id, name, index, last,
                                                           view, &sealed));
            written += sealed.size();
            return dest.PutDeferred(object, sealed);
          }));
          out.objects_written++;
          entry.size = size;
          entry.chunks = count;
          ++index;
          done += piece.size();
          plain.reset();
          if (progress) progress(done, std::max(done, total));
          return absl::OkStatus();
        },
        into));
    plain.reset();
    if (index != entry.chunks) {
      return absl::InternalError(absl::StrCat(name, " changed while it was backed up"));
    }
    RETURN_IF_ERROR(hasher.Submit([sha, &hashes, i] {
      hashes[i] = sha->FinishHex();
      return absl::OkStatus();
    }));
    m.files.push_back(std::move(entry));
    hash_of.push_back(i);
  }
  RETURN_IF_ERROR(hasher.Finish());
  RETURN_IF_ERROR(workers.Finish());
  for (size_t k = 0; k < m.files.size(); ++k) {
    if (hash_of[k] != SIZE_MAX) m.files[k].sha256_hex = hashes[hash_of[k]];
  }
  // Every chunk durable, then the manifest last: only now is the backup complete.
  RETURN_IF_ERROR(dest.SyncPuts());
  ASSIGN_OR_RETURN(std::string sealed_manifest, SealBackupManifest(m, key));
  RETURN_IF_ERROR(dest.Put(BackupManifestObject(job.backup_id), sealed_manifest));
  out.bytes = done;
  out.files = m.files.size();
  out.objects_written++;
  out.bytes_written = written + sealed_manifest.size();
  out.key_id = m.wrapped_key.key_id;
  out.key_version = m.wrapped_key.key_version;
  if (progress) progress(done, done);
  return out;
}

absl::Status Mismatch(const std::string& id, const std::string& file) {
  return absl::DataLossError(absl::StrCat("backup ", id, " failed verification: file ", file,
                                          " does not match its size in the manifest"));
}

// What a restore checks, and why not the files' SHA-256 again: every chunk is opened with
// AES-256-GCM under a key only this backup (or this shared object) has — fresh random, wrapped
// by the master key, carried only inside the sealed manifest — with associated data binding the
// backup (or object) and file, the chunk's index and whether it is the last one; the sealed
// manifest binds each file's size and chunk count. The backup seals each (file, index) exactly
// once (a retried upload re-sends the same sealed bytes), from the very buffer it hashed. So
// chunks that all open, in order, up to a chunk flagged last, at the manifest's count and
// size, are byte for byte what the backup read: a flipped byte, a dropped, reordered or
// foreign chunk, a truncated file all fail the tag or the count. Hashing the plaintext again
// could only catch what the GCM tags already exclude — anyone able to make a chunk that opens
// holds the key and could recompute the hash too — and cost more CPU than decrypting
// (SHA-256 ~0.6 s/GB here vs GCM ~0.2). The hash stays in the manifest for what needs it: the
// next backup's check that an SST is unchanged before reusing its shared object.
absl::Status RestoreFiles(BackupDestination& dest, const OpenedBackupManifest& opened,
                          rocksdb::FileSystem& fs, const std::string& target_dir,
                          const BackupProgress& progress) {
  const BackupManifest& m = opened.manifest;
  const std::string& id = m.backup_id;
  uint64_t total = 0, done = 0;
  for (const auto& f : m.files) total += f.size;
  if (progress) progress(0, total);
  // The workers fetch and open (authenticate, decrypt) the next chunks while this thread writes
  // the current one, in order. A task never fails: its result goes to its future.
  using Opened = absl::StatusOr<std::pair<std::shared_ptr<ChunkBuffers::Lease>, size_t>>;
  // One buffer per chunk a worker may hold, and the one this thread writes from.
  ChunkBuffers buffers(kChunkBuffers, m.chunk_size);
  BackupWorkers workers(kWorkerThreads, kMaxQueuedChunks);
  std::deque<std::future<Opened>> pending;
  size_t next_file = 0;
  uint32_t next_chunk = 0;
  auto submit_next = [&]() -> absl::Status {
    while (next_file < m.files.size() && next_chunk >= m.files[next_file].chunks) {
      ++next_file, next_chunk = 0;
    }
    if (next_file == m.files.size()) return absl::OkStatus();
    size_t i = next_file;
    uint32_t c = next_chunk++;
    auto promise = std::make_shared<std::promise<Opened>>();
    pending.push_back(promise->get_future());
    return workers.Submit([&dest, &opened, &m, &id, &buffers, i, c, promise] {
      const BackupFileEntry& f = m.files[i];
      bool last = c + 1 == f.chunks;
      bool shared = !f.object.empty();
      // Each worker's own buffer for the sealed chunks it fetches (ciphertext: nothing to
      // wipe), reused so that no chunk costs an allocation.
      thread_local std::string sealed;
      absl::Status got = dest.GetInto(
          shared ? BackupFileChunkObject(f.object, c) : BackupChunkObject(id, i, c), &sealed);
      if (!got.ok()) {
        promise->set_value(absl::DataLossError(absl::StrCat("backup ", id, " is incomplete: chunk ",
                                                            c, " of file ", f.name,
                                                            " cannot be read: ", got.message())));
      } else {
        std::shared_ptr<ChunkBuffers::Lease> plain = buffers.Take();
        auto n = shared
                     ? OpenBackupFileChunkInto(*f.file_key, id, f.name, f.object, f.size, c, last,
                                               sealed, plain->bytes())
                     : OpenBackupChunkInto(opened.key, id, f.name, c, last, sealed, plain->bytes());
        if (n.ok()) {
          promise->set_value(std::pair{std::move(plain), *n});
        } else {
          promise->set_value(n.status());
        }
      }
      return absl::OkStatus();
    });
  };
  for (size_t k = 0; k < kWorkerThreads + kMaxQueuedChunks; ++k) RETURN_IF_ERROR(submit_next());
  for (size_t i = 0; i < m.files.size(); ++i) {
    const BackupFileEntry& f = m.files[i];
    std::string path = target_dir + "/" + f.name;
    std::unique_ptr<rocksdb::FSWritableFile> out;
    rocksdb::IOOptions io;
    rocksdb::IOStatus s = fs.NewWritableFile(path, rocksdb::FileOptions(), &out, nullptr);
    if (!s.ok()) return IoError(absl::StrCat("cannot create ", path), s);
    uint64_t size = 0;
    for (uint32_t c = 0; c < f.chunks; ++c) {
      bool last = c + 1 == f.chunks;
      Opened chunk = pending.front().get();
      pending.pop_front();
      RETURN_IF_ERROR(submit_next());
      RETURN_IF_ERROR(chunk.status());
      size_t n = chunk->second;
      if ((!last && n != m.chunk_size) || n > m.chunk_size) {
        return absl::DataLossError(
            absl::StrCat("backup ", id, ": chunk ", c, " of file ", f.name, " has the wrong size"));
      }
      std::string_view plain(reinterpret_cast<const char*>(chunk->first->bytes().data()), n);
      size += n;
      s = out->Append(rocksdb::Slice(plain.data(), plain.size()), io, nullptr);
      if (!s.ok()) return IoError(absl::StrCat("cannot write ", path), s);
      done += n;
      if (progress) progress(done, total);
    }
    if (size != f.size) return Mismatch(id, f.name);
    s = out->Sync(io, nullptr);
    if (s.ok()) s = out->Close(io, nullptr);
    if (!s.ok()) return IoError(absl::StrCat("cannot write ", path), s);
  }
  RETURN_IF_ERROR(workers.Finish());
  return FsyncDirectory(target_dir);
}

}  // namespace

absl::StatusOr<BackupSummary> BackUpCluster(ClusterStore& store, MasterKeyProvider& provider,
                                            BackupDestination& dest, const BackupJob& job,
                                            const BackupProgress& progress) {
  if (job.chunk_size == 0) return absl::InvalidArgumentError("backup chunk size must be > 0");
  std::vector<std::string> new_objects;
  auto out = WriteBackup(store, provider, dest, job, progress, &new_objects);
  RemoveTree(job.checkpoint_dir);
  if (!out.ok()) {
    // Only this backup can hold the objects it created (reuse starts from completed backups).
    DeleteBackupObjects(dest, job.backup_id).IgnoreError();
    DeleteBackupFileObjects(dest, new_objects).IgnoreError();
  }
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

absl::Status DeleteBackupFileObjects(BackupDestination& dest,
                                     const std::vector<std::string>& objects) {
  absl::Status first;
  for (const std::string& object : objects) {
    absl::Status st = dest.DeleteAll(object + "/");
    if (first.ok()) first = st;
  }
  return first;
}

}  // namespace keyward
