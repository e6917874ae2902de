#pragma once
// One cluster's encrypted key-value store: a RocksDB database in `dir` opened through the
// encrypted file system, whose data keys come from the cluster's KeyDictionary (itself wrapped by
// the master-key provider). Values carry an optional expiry so the Redis layer can offer TTLs.
//
// Not internally synchronised for read-modify-write sequences: the RESP server runs each
// cluster's commands on its serial executor, never two at a time. Flush/Compact may run from
// other threads.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kms/master_key_provider.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/write_buffer_manager.h"
#include "storage/key_dictionary.h"

namespace keyward {

// Memory shared by every cluster of a server, so RSS grows sub-linearly with cluster count.
struct SharedStorageResources {
  static std::shared_ptr<SharedStorageResources> New(size_t block_cache_bytes,
                                                     size_t write_buffer_bytes);
  std::shared_ptr<rocksdb::Cache> block_cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers;
};

struct StoredValue {
  std::string data;
  int64_t expire_at_ms = 0;  // 0: no expiry
};

struct ClusterStoreOptions {
  std::string dir;         // holds keys.dict and the RocksDB files
  std::string cluster_id;  // bound into the dictionary and the wrapped key
  uint64_t data_key_rotation_seconds = 7 * 24 * 3600;
  std::function<int64_t()> now_ms;  // injectable clock; defaults to the system clock
};

// What ClusterStore::Repair dropped to bring a damaged store back to a consistent point.
struct RepairReport {
  std::string method;               // how: "point-in-time WAL recovery", "RepairDB", "none needed"
  std::string damage;               // what was wrong (RocksDB's open error, file names, no data)
  uint64_t last_sequence_kept = 0;  // the newest write sequence number the store still holds
  // Writes dropped: single writes (sequence numbers are dense, so every one after the last kept
  // up to the newest a readable WAL record names), the readable WAL records (write batches)
  // after the damage, the damaged stretches (unreadable, each up to the end of its 32 KiB
  // block), and the WAL bytes from the first damage to the end. `exact` is false when no
  // readable record follows the damage: the figures are then lower bounds.
  uint64_t records_dropped = 0;
  uint64_t damaged_stretches = 0;
  uint64_t writes_dropped = 0;
  uint64_t bytes_dropped = 0;
  uint64_t first_sequence_dropped = 0;  // 0 when nothing was dropped
  uint64_t last_sequence_dropped = 0;
  bool exact = true;
  std::vector<std::string> files_set_aside;  // damaged files RepairDB moved to lost/
  uint64_t entries_set_aside = 0;            // entries (writes) those files held, when known
  std::string Summary() const;               // one sentence for the API answer and the audit
};

class ClusterStore {
 public:
  // Creates the dictionary and an empty database. Fails if `dir` already holds a dictionary.
  static absl::StatusOr<std::unique_ptr<ClusterStore>> Create(
      ClusterStoreOptions options, MasterKeyProvider& provider,
      std::shared_ptr<SharedStorageResources> shared);
  // Opens an existing cluster: one unwrap through `provider`, then RocksDB recovery.
  static absl::StatusOr<std::unique_ptr<ClusterStore>> Open(
      ClusterStoreOptions options, MasterKeyProvider& provider,
      std::shared_ptr<SharedStorageResources> shared);
  // Brings a store that does not open because of damaged files (DataLoss from Open) back to its
  // last consistent point, dropping what follows the damage, and reports what was dropped. The
  // store is closed again on return. FailedPrecondition when the key dictionary itself is
  // damaged (nothing here can rebuild the data keys) or the store opens without repair.
  static absl::StatusOr<RepairReport> Repair(ClusterStoreOptions options,
                                             MasterKeyProvider& provider,
                                             std::shared_ptr<SharedStorageResources> shared);
  ~ClusterStore();

  // Reads a live value (expired values read as absent and are removed).
  absl::StatusOr<std::optional<StoredValue>> Get(std::string_view key);
  // Get from memory only (memtables and block cache: no file read, no write), for the RESP
  // server's I/O thread: true with *value set (nullopt: absent) when memory answers, false when
  // answering needs a file read, an expired key's removal or an error (then Get, on a worker).
  bool GetIfCached(std::string_view key, std::optional<StoredValue>* value);
  absl::Status Put(std::string_view key, const StoredValue& value);
  absl::Status PutMany(const std::vector<std::pair<std::string, StoredValue>>& entries);
  // Returns whether a live key was removed.
  absl::StatusOr<bool> Delete(std::string_view key);
  absl::Status DeleteAll();
  // Live keys in order, starting strictly after `after` (empty = from the start), at most `limit`
  // examined; `next` is the last key examined or empty when the end was reached.
  absl::Status ScanKeys(std::string_view after, size_t limit, std::vector<std::string>* keys,
                        std::string* next);
  absl::StatusOr<uint64_t> CountLiveKeys();
  // The live keys when the database holds at most `limit` entries (live, expired, deleted and
  // overwritten ones all count), else nullopt: a scan bounded by `limit` whatever the size.
  absl::StatusOr<std::optional<uint64_t>> CountKeysUpTo(size_t limit);
  // RocksDB's "rocksdb.estimate-num-keys": no scan, approximate until compaction.
  absl::StatusOr<uint64_t> EstimateKeyCount();
  // Deletes up to `limit` keys after `after` in one write batch; `next` as in ScanKeys. FLUSHDB
  // calls it in steps, so flushing a big cluster never holds a thread for long.
  absl::Status DeleteKeys(std::string_view after, size_t limit, std::string* next);

  // Makes every write so far durable: one fsync of the live WAL (writes themselves never sync,
  // so callers can gather many writes per sync; see server/durability.h).
  absl::Status SyncWal();
  // The sequence number of the newest write (grows with every write; the everysec syncer skips
  // a store whose number has not moved since its last sync).
  uint64_t LatestSequenceNumber() const;
  // Writes are buffered (manual_wal_flush): this hands the WAL's buffer to the OS (then a
  // process crash loses nothing) and, with `sync`, syncs it (then a power loss loses nothing).
  // The RESP server calls it after each round of writes, before the replies.
  absl::Status FlushWal(bool sync);
  absl::Status Flush();
  absl::Status CompactAll();
  absl::StatusOr<bool> RotateDataKeyIfDue();

  // Data-key id → number of live files whose encryption header names it. Live files: the SSTs,
  // the live WALs, MANIFEST, CURRENT, OPTIONS and IDENTITY. Reads only the 4 KiB headers from
  // disk (independent of what RocksDB caches). A file deleted while listing is skipped.
  absl::StatusOr<std::map<uint32_t, uint64_t>> DataKeyIdsInUse();
  // Makes a new current data key K and rewrites every live file under K while the store stays
  // open and serving (see cluster_store_reencrypt.cc for how each file kind is rewritten).
  // `progress(done, total)` (may be empty) is called from this thread and from a reporter
  // thread of its own (never from RocksDB's flush and compaction threads): total = live files under
  // older keys at the start, done = how many of them are gone or rewritten; it ends with done ==
  // total on success. On success no live file is under a key older than K (a concurrent scheduled
  // rotation may leave files under a newer key). FailedPrecondition when another Reencrypt is
  // running; Aborted if files under older keys remain after three passes (nothing is lost; run it
  // again).
  absl::Status Reencrypt(std::function<void(uint64_t done, uint64_t total)> progress);
  // The cluster is closing: a running Reencrypt stops at once (its manual compaction is
  // cancelled) and returns Cancelled; this returns once it has, so background work never keeps
  // a closed cluster's store, and the keys it holds, alive. Thread-safe; for ClusterRuntime's
  // close paths (never from inside a Reencrypt progress callback).
  void StopBackgroundWork();

  // Backups (cluster_store_backup.cc). A consistent RocksDB checkpoint of the open database in
  // `dir` (which must not exist; same file system as the cluster, as SSTs are hard-linked):
  // memtables are flushed first, writes never pause beyond that. The checkpoint's files are
  // encrypted like the cluster's (same dictionary); remove it when done.
  absl::Status CreateCheckpoint(const std::string& dir);
  // Reads a file written through this store's encrypted file system (e.g. a checkpoint file) as
  // plaintext, `piece` bytes at a time (the last piece may be shorter; an empty file gives one
  // empty piece). `size` is the plaintext size, known before the first piece. `buffer`, when
  // given, hands out the memory (at least `piece` bytes, the caller's to wipe) each piece is
  // read and decrypted into, so a caller that keeps pieces (a backup's pipeline) copies none;
  // else one wiped buffer is reused for every piece.
  absl::Status ReadDecrypted(
      const std::string& path, size_t piece,
      const std::function<absl::Status(uint64_t size, std::string_view bytes)>& sink,
      const std::function<uint8_t*()>& buffer = nullptr);
  bool stopping() const { return stopping_.load(); }
  int64_t NowMs() const { return options_.now_ms(); }
  // --- Storage health (cluster_store_health.cc) ---
  // OK, or why RocksDB stopped accepting writes: a background flush, compaction or WAL write
  // failed (corrupted data found, disk full) and the database went read-only; reads still work.
  // ResourceExhausted ("disk full: ...") or DataLoss / Internal with RocksDB's message (file
  // names, no data). Set from RocksDB's threads; cleared when it recovers.
  absl::Status WritesStoppedBy() const;
  // Asks RocksDB to leave read-only mode (after space was freed); OK when writes work again.
  absl::Status Resume();
  const KeyDictionary& dictionary() const { return *dictionary_; }
  KeyDictionary& mutable_dictionary() { return *dictionary_; }

 private:
  class ProgressListener;
  class HealthListener;
  struct LiveFile {
    std::string name;  // relative to the cluster directory, with a leading '/'
    uint32_t key_id = 0;
  };

  ClusterStore() = default;
  // An iterator at the first key strictly after `after` (the first key when it is empty).
  std::unique_ptr<rocksdb::Iterator> IteratorAfter(std::string_view after);
  absl::StatusOr<std::vector<LiveFile>> ListLiveFiles();
  // `listing_mu` is held around the obsolete-file purge: listing WAL files disables file
  // deletions for a moment, and a purge that ran then would leave the old WAL behind.
  absl::Status ReencryptPass(std::mutex& listing_mu);
  absl::Status RewriteIdentityFile();
  void AttachReencryptListener(rocksdb::Options* opts);  // at open, before DB::Open
  void AttachHealthListener(rocksdb::Options* opts);     // at open, before DB::Open
  // A write's status: while writes are stopped, Unavailable saying so (not RocksDB's raw
  // background error, which reads like the write itself found corruption).
  absl::Status WriteStatus(const rocksdb::Status& s, std::string_view what) const;
  rocksdb::Options BaseOptions(bool create);
  // "; write-ahead log N.log is damaged at byte X of Y" for each damaged WAL, or "": RocksDB's
  // own message for a damaged WAL names no file.
  std::string WalDamageNote() const;
  static absl::StatusOr<std::unique_ptr<ClusterStore>> OpenDb(
      ClusterStoreOptions options, std::shared_ptr<KeyDictionary> dictionary,
      std::shared_ptr<SharedStorageResources> shared, bool create,
      rocksdb::WALRecoveryMode recovery = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords);

  ClusterStoreOptions options_;
  std::shared_ptr<SharedStorageResources> shared_;
  std::shared_ptr<KeyDictionary> dictionary_;
  std::shared_ptr<rocksdb::FileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::shared_ptr<ProgressListener> listener_;
  std::shared_ptr<HealthListener> health_;
  std::mutex reencrypt_mu_;  // one Reencrypt at a time
  std::atomic<bool> stopping_{false};
  std::unique_ptr<rocksdb::DB> db_;
};

// Cuts files shorter than the encryption header to zero bytes: a crash right after a file was
// created can leave one, and Debian's RocksDB aborts the process when it opens one
// (facebook/rocksdb#7410). Such a file never held data. Returns the number of files repaired.
absl::StatusOr<int> RepairTornFileHeaders(const std::string& dir);

}  // namespace keyward
