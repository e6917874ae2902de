// ClusterStore: which data keys the live files use, and re-encryption of every live file under a
// new data key while the store keeps serving.
//
// How each kind of file gets rewritten under the new key K (RocksDB 7.8.3; every file created
// after K became current is encrypted under K because the provider reads Current() at creation):
// - WAL: a WAL switch needs a non-empty memtable or WAL, and an empty current WAL is otherwise
//   kept. A log-data record (WAL only, no key, invisible to readers) makes the WAL non-empty, and
//   changing a WAL DB option (wal_bytes_per_sync) makes SetDBOptions call SwitchWAL, which opens
//   a new WAL. The flush that follows retires the old one. Once per pass (see ReencryptPass).
// - memtable contents → SSTs: Flush().
// - SSTs: CompactRange over the whole key space with BottommostLevelCompaction::kForce; every
//   level is merged down and the bottommost level is rewritten too (trivial moves only happen
//   above it). Up to three passes, in case a background job installed an older-key file.
// - OPTIONS: SetDBOptions/SetOptions each write a new OPTIONS file; RocksDB keeps the newest two:
//   the WAL step's SetDBOptions and the MANIFEST step's SetOptions write them.
// - MANIFEST and CURRENT: no API starts a new MANIFEST on demand, so the store opens with
//   max_manifest_file_size = 0 (see OpenDb): every version edit (flush, compaction, SetOptions)
//   writes a new MANIFEST and CURRENT.
// - IDENTITY: RocksDB reads it only at open; we rewrite it ourselves, temp → sync → rename →
//   fsync(dir), through the encrypted file system.
// - Files that are no longer live are deleted by a full-scan purge (Disable/EnableFileDeletions).

#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rocksdb/convenience.h"
#include "rocksdb/listener.h"
#include "storage/cluster_store.h"
#include "storage/encryption_provider.h"
#include "storage/rocks_status.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

constexpr int kReencryptPasses = 3;

// The data-key id in the header of `path`, nullopt when the file is gone or empty (a file cut
// inside its header is emptied at open; it never held data).
absl::StatusOr<std::optional<uint32_t>> ReadDataKeyId(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", ErrnoText(errno)));
  }
  std::string header(kFileHeaderSize, '\0');
  ssize_t n = pread(fd, header.data(), header.size(), 0);
  int err = errno;
  close(fd);
  if (n < 0) return absl::InternalError(absl::StrCat("cannot read ", path, ": ", ErrnoText(err)));
  if (n == 0) return std::nullopt;
  auto parsed = ParseFileHeader(std::string_view(header.data(), static_cast<size_t>(n)));
  if (!parsed.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed->data_key_id;
}

}  // namespace

// Forwards flush and compaction completions to the running Reencrypt, if any.
class ClusterStore::ProgressListener : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "keyward-reencrypt-progress"; }
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { Notify(); }
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override { Notify(); }
  // Setting an empty function waits for a callback in flight to return.
  void Set(std::function<void()> f) {
    std::lock_guard<std::mutex> lock(mu_);
    callback_ = std::move(f);
  }
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    if (callback_) callback_();
  }

 private:
  std::mutex mu_;
  std::function<void()> callback_;
};

void ClusterStore::AttachReencryptListener(rocksdb::Options* opts) {
  listener_ = std::make_shared<ProgressListener>();
  opts->listeners.push_back(listener_);
}

absl::StatusOr<std::vector<ClusterStore::LiveFile>> ClusterStore::ListLiveFiles() {
  std::vector<std::string> names;
  uint64_t manifest_size = 0;
  RETURN_IF_ERROR(FromRocks(db_->GetLiveFiles(names, &manifest_size, /*flush_memtable=*/false),
                            "cannot list live files"));
  rocksdb::VectorLogPtr wals;
  RETURN_IF_ERROR(FromRocks(db_->GetSortedWalFiles(wals), "cannot list WAL files"));
  for (const auto& wal : wals) {
    if (wal->Type() == rocksdb::kAliveLogFile) names.push_back(wal->PathName());
  }
  names.push_back("/IDENTITY");
  std::vector<LiveFile> out;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(std::optional<uint32_t> id, ReadDataKeyId(options_.dir + name));
    if (id) out.push_back({name, *id});
  }
  return out;
}

absl::StatusOr<std::map<uint32_t, uint64_t>> ClusterStore::DataKeyIdsInUse() {
  ASSIGN_OR_RETURN(std::vector<LiveFile> files, ListLiveFiles());
  std::map<uint32_t, uint64_t> ids;
  for (const LiveFile& f : files) ++ids[f.key_id];
  return ids;
}

absl::Status ClusterStore::RewriteIdentityFile() {
  std::string identity;
  RETURN_IF_ERROR(FromRocks(db_->GetDbIdentity(identity), "cannot read the database identity"));
  // Not a RocksDB file name, so RocksDB's obsolete-file purge never touches the temp file.
  std::string tmp = options_.dir + "/IDENTITY.kw-tmp";
  RETURN_IF_ERROR(FromRocks(rocksdb::WriteStringToFile(env_.get(), identity, tmp, true),
                            "cannot write the new IDENTITY file"));
  RETURN_IF_ERROR(FromRocks(env_->RenameFile(tmp, options_.dir + "/IDENTITY"),
                            "cannot replace the IDENTITY file"));
  return FsyncDirectory(options_.dir);
}

absl::Status ClusterStore::ReencryptPass(std::mutex& listing_mu) {
  // WAL: see the file comment.
  rocksdb::WriteBatch marker;
  RETURN_IF_ERROR(FromRocks(marker.PutLogData("keyward: re-encrypt"), "batch failed"));
  // Written alone, never in one write group with the cluster's own writes: RocksDB groups only
  // writes of equal protection, and a group's leader copies its followers' batches under
  // atomics inside the uninstrumented librocksdb, which TSan reports as a race on our strings
  // (CI, session 9). The per-key protection costs nothing for a key-less batch.
  rocksdb::WriteOptions alone;
  alone.protection_bytes_per_key = 8;
  RETURN_IF_ERROR(FromRocks(db_->Write(alone, &marker), "WAL write failed"));
  // WAL records wait in RocksDB's buffer (manual_wal_flush): the switch needs the marker in the
  // file.
  RETURN_IF_ERROR(FromRocks(db_->FlushWAL(false), "WAL write failed"));
  // One switch per pass, never two back to back: each switch marks the oldest live WAL as being
  // flushed, and while it is marked RocksDB ignores further switches. With an empty memtable
  // no flush ever clears the mark, so a second switch right after the first could leave the
  // new current WAL marked for good, and every later re-encryption kept it under the old key
  // (seen in ~40 % of runs of IdleStoreWithEmptyWalIsRewrittenToo under TSan). Both values
  // mean "sync the WAL in the background every ~1 MiB".
  constexpr uint64_t kWalSyncBytes = 1 << 20;
  const uint64_t next = db_->GetDBOptions().wal_bytes_per_sync == kWalSyncBytes
                            ? kWalSyncBytes + 4096
                            : kWalSyncBytes;
  RETURN_IF_ERROR(FromRocks(db_->SetDBOptions({{"wal_bytes_per_sync", std::to_string(next)}}),
                            "cannot switch to a new WAL"));
  RETURN_IF_ERROR(Flush());

  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  compact.exclusive_manual_compaction = false;  // automatic compactions keep the store serving
  RETURN_IF_ERROR(FromRocks(db_->CompactRange(compact, nullptr, nullptr), "compaction failed"));

  // A version edit (new MANIFEST and CURRENT) and a third OPTIONS file, setting an option to
  // the value it has.
  bool auto_off = db_->GetOptions().disable_auto_compactions;
  RETURN_IF_ERROR(
      FromRocks(db_->SetOptions({{"disable_auto_compactions", auto_off ? "true" : "false"}}),
                "cannot write a new MANIFEST"));
  RETURN_IF_ERROR(RewriteIdentityFile());

  // Full-scan purge of files that are no longer live; a no-op while a backup holds deletions.
  // Not while the progress reporter lists files: GetSortedWalFiles disables deletions too.
  std::lock_guard<std::mutex> no_listing(listing_mu);
  RETURN_IF_ERROR(FromRocks(db_->DisableFileDeletions(), "cannot pause file deletions"));
  return FromRocks(db_->EnableFileDeletions(/*force=*/false), "cannot purge obsolete files");
}

void ClusterStore::StopBackgroundWork() {
  stopping_.store(true);
  if (db_) db_->DisableManualCompaction();
  std::lock_guard<std::mutex> wait_for_reencrypt(reencrypt_mu_);
}

absl::Status ClusterStore::Reencrypt(std::function<void(uint64_t, uint64_t)> progress) {
  std::unique_lock<std::mutex> busy(reencrypt_mu_, std::try_to_lock);
  if (!busy.owns_lock()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster ", options_.cluster_id, " is already being re-encrypted; wait for it to finish"));
  }
  // A close that came first: nothing may be written (a new data key would rewrite keys.dict
  // while the cluster is being shredded or reopened).
  if (stopping_.load()) {
    return absl::CancelledError(absl::StrCat("cluster ", options_.cluster_id,
                                             " was closed before re-encryption began; run it "
                                             "again once the cluster is available"));
  }
  ASSIGN_OR_RETURN(uint32_t new_id, dictionary_->AddDataKey(static_cast<uint64_t>(NowMs() / 1000)));
  ASSIGN_OR_RETURN(std::vector<LiveFile> before, ListLiveFiles());
  std::set<std::string> to_rewrite;
  for (const LiveFile& f : before) {
    if (f.key_id < new_id) to_rewrite.insert(f.name);
  }
  const uint64_t total = to_rewrite.size();
  std::mutex progress_mu;
  uint64_t reported = 0;
  // done = files of the starting set that are gone or now under K or newer (CURRENT and
  // IDENTITY keep their names). Never goes backwards.
  std::mutex listing_mu;  // the reporter's listing vs the pass's purge
  auto report = [&] {
    absl::StatusOr<std::vector<LiveFile>> live;
    {
      std::lock_guard<std::mutex> lock(listing_mu);
      live = ListLiveFiles();
    }
    if (!live.ok()) return;
    uint64_t still_old = 0;
    for (const LiveFile& f : *live) {
      if (f.key_id < new_id && to_rewrite.count(f.name) != 0) ++still_old;
    }
    std::lock_guard<std::mutex> lock(progress_mu);
    reported = std::max(reported, total - std::min(total, still_old));
    if (progress) progress(reported, total);
  };
  if (progress) progress(0, total);
  // Flush and compaction threads only flag that something finished; this reporter thread does
  // the file reads and the metadata write, so progress never slows RocksDB's own threads.
  std::mutex wake_mu;
  std::condition_variable wake;
  bool pending = false;   // guarded by wake_mu
  bool finished = false;  // guarded by wake_mu
  std::thread reporter([&] {
    std::unique_lock<std::mutex> lock(wake_mu);
    while (true) {
      wake.wait(lock, [&] { return pending || finished; });
      if (finished) return;
      pending = false;
      lock.unlock();
      report();
      lock.lock();
    }
  });
  listener_->Set([&] {
    {
      std::lock_guard<std::mutex> lock(wake_mu);
      pending = true;
    }
    wake.notify_one();
  });
  absl::Cleanup stop_reporter = [&] {
    listener_->Set(nullptr);
    {
      std::lock_guard<std::mutex> lock(wake_mu);
      finished = true;
    }
    wake.notify_one();
    reporter.join();
  };
  absl::Status st;
  bool clean = false;
  std::vector<std::string> left;  // files still under an older key after the last pass
  for (int pass = 0; pass < kReencryptPasses && st.ok() && !clean; ++pass) {
    if (!stopping_.load()) st = ReencryptPass(listing_mu);
    if (stopping_.load()) {
      st = absl::CancelledError(absl::StrCat("cluster ", options_.cluster_id,
                                             " was closed during re-encryption; nothing is lost, "
                                             "run it again once the cluster is available"));
    }
    if (!st.ok()) break;
    auto live = ListLiveFiles();
    if (!live.ok()) {
      st = live.status();
      break;
    }
    left.clear();
    for (const LiveFile& f : *live) {
      if (f.key_id < new_id) left.push_back(f.name.substr(1));
    }
    clean = left.empty();
  }
  std::move(stop_reporter).Invoke();
  RETURN_IF_ERROR(st);
  if (!clean) {
    return absl::AbortedError(absl::StrCat(
        "cluster ", options_.cluster_id, " still has files under data keys older than ", new_id,
        " after ", kReencryptPasses, " passes (", absl::StrJoin(left, ", "),
        "); nothing is lost, run it again"));
  }
  if (progress) progress(total, total);
  return absl::OkStatus();
}

}  // namespace keyward
