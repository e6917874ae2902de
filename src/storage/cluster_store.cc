#include "storage/cluster_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "crypto/stack_wipe.h"
#include "rocksdb/env_encryption.h"
#include "rocksdb/table.h"
#include "storage/encrypted_fs.h"
#include "storage/encryption_provider.h"
#include "storage/rocks_status.h"
#include "storage/rocksdb_logger.h"
#include "storage/storage_error.h"
#include "util/bytes.h"
#include "util/clock.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

// Value encoding: u8 format (1) | u64 expire_at_ms (0 = none) | data.
constexpr char kValueFormat = 1;
constexpr size_t kValueHeader = 9;

std::string EncodeValue(const StoredValue& v) {
  std::string out;
  out.reserve(kValueHeader + v.data.size());
  out.push_back(kValueFormat);
  PutU64(&out, static_cast<uint64_t>(v.expire_at_ms));
  out.append(v.data);
  return out;
}

absl::StatusOr<StoredValue> DecodeValue(std::string_view raw) {
  if (raw.size() < kValueHeader || raw[0] != kValueFormat) {
    return absl::DataLossError("stored value has an unknown format");
  }
  StoredValue v;
  v.expire_at_ms = static_cast<int64_t>(GetU64(raw.data() + 1));
  v.data.assign(raw.substr(kValueHeader));
  return v;
}

bool Expired(std::string_view raw, int64_t now_ms) {
  if (raw.size() < kValueHeader) return false;
  int64_t exp = static_cast<int64_t>(GetU64(raw.data() + 1));
  return exp != 0 && exp <= now_ms;
}

}  // namespace

std::shared_ptr<SharedStorageResources> SharedStorageResources::New(size_t block_cache_bytes,
                                                                    size_t write_buffer_bytes) {
  auto r = std::make_shared<SharedStorageResources>();
  r->block_cache = rocksdb::NewLRUCache(block_cache_bytes);
  r->write_buffers =
      std::make_shared<rocksdb::WriteBufferManager>(write_buffer_bytes, r->block_cache);
  return r;
}

absl::StatusOr<int> RepairTornFileHeaders(const std::string& dir) {
  int repaired = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string name = entry.path().filename().string();
    if (name == KeyDictionary::kFileName || name == "LOCK") continue;
    auto size = entry.file_size(ec);
    if (ec) continue;
    if (size > 0 && size < kFileHeaderSize) {
      if (truncate(entry.path().c_str(), 0) != 0) {
        return absl::InternalError(absl::StrCat("cannot repair torn file ", entry.path().string(),
                                                ": ", ErrnoText(errno)));
      }
      LogWarn(
          "storage.torn_header_emptied",
          entry.path().string() + " was cut inside its encryption header by a crash; emptied it",
          {{"file", entry.path().string()}});
      ++repaired;
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  return repaired;
}

absl::StatusOr<std::unique_ptr<ClusterStore>> ClusterStore::Create(
    ClusterStoreOptions options, MasterKeyProvider& provider,
    std::shared_ptr<SharedStorageResources> shared) {
  if (!options.now_ms) options.now_ms = SystemNowMs;
  RETURN_IF_ERROR(MakeDirs(options.dir, 0700));
  std::string dict_path = options.dir + "/" + KeyDictionary::kFileName;
  if (access(dict_path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("cluster directory ", options.dir, " already holds a key dictionary"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<KeyDictionary> dict,
                   KeyDictionary::Create(dict_path, options.cluster_id, provider,
                                         static_cast<uint64_t>(options.now_ms() / 1000)));
  return OpenDb(std::move(options), std::move(dict), std::move(shared), /*create=*/true);
}

absl::StatusOr<std::unique_ptr<ClusterStore>> ClusterStore::Open(
    ClusterStoreOptions options, MasterKeyProvider& provider,
    std::shared_ptr<SharedStorageResources> shared) {
  if (!options.now_ms) options.now_ms = SystemNowMs;
  std::string dict_path = options.dir + "/" + KeyDictionary::kFileName;
  auto dict = KeyDictionary::Open(dict_path, options.cluster_id, provider);
  // Everything but the unwrap is about the file itself: missing, unreadable, damaged.
  if (!dict.ok()) {
    return dict.status().GetPayload(KeyDictionary::kUnwrapFailedPayload).has_value()
               ? dict.status()
               : MarkStorageError(dict.status());
  }
  auto store = OpenDb(std::move(options), *std::move(dict), std::move(shared), /*create=*/false);
  if (!store.ok()) return MarkStorageError(store.status());
  return store;
}

rocksdb::Options ClusterStore::BaseOptions(bool create) {
  rocksdb::Options opts;
  opts.env = env_.get();
  opts.create_if_missing = create;
  opts.error_if_exists = create;
  opts.info_log = NewStderrRocksLogger(options_.cluster_id);
  opts.allow_mmap_reads = false;
  opts.allow_mmap_writes = false;
  opts.paranoid_checks = true;
  // Only a torn tail is tolerated: a crash can cut the last record short, and nothing was
  // acknowledged from it. Damage anywhere else fails the open (DataLoss) instead of silently
  // dropping every write after it, as point-in-time recovery would: the cluster goes
  // inaccessible and `keyward cluster repair --accept-data-loss` drops them knowingly (Repair).
  opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  opts.max_open_files = 256;
  opts.write_buffer_size = 8 << 20;
  opts.max_write_buffer_number = 3;
  opts.write_buffer_manager = shared_->write_buffers;
  opts.keep_log_file_num = 1;
  // Writes append to the WAL's buffer only; the RESP server's executor hands a whole round's
  // writes to the OS at once (FlushWal) before it replies: one WAL write per round, not per
  // write (group commit, server/cluster_executor.h).
  opts.manual_wal_flush = true;
  // Every MANIFEST update starts a new MANIFEST (a full snapshot of the file list, a few KiB, and
  // a new CURRENT) instead of appending to one of up to 1 GiB. RocksDB 7.8 has no call that
  // starts a new MANIFEST on demand; with this, any version edit does, so Reencrypt can put the
  // MANIFEST and CURRENT under a new data key while the store stays open. Edits come from
  // flushes and compactions only, each of which writes megabytes, so the extra small write and
  // fsync are noise. It also keeps the plaintext-derived key ranges of deleted SSTs from
  // lingering in a long MANIFEST.
  opts.max_manifest_file_size = 0;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = shared_->block_cache;
  table.cache_index_and_filter_blocks = true;
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return opts;
}

absl::StatusOr<std::unique_ptr<ClusterStore>> ClusterStore::OpenDb(
    ClusterStoreOptions options, std::shared_ptr<KeyDictionary> dictionary,
    std::shared_ptr<SharedStorageResources> shared, bool create,
    rocksdb::WALRecoveryMode recovery) {
  std::unique_ptr<ClusterStore> store(new ClusterStore());
  store->options_ = std::move(options);
  store->shared_ = std::move(shared);
  store->dictionary_ = std::move(dictionary);
  ASSIGN_OR_RETURN(int repaired, RepairTornFileHeaders(store->options_.dir));
  (void)repaired;

#ifdef KEYWARD_BENCH_PLAINTEXT
  // Benchmark baseline only (bench/resp): the same server with storage encryption off. The
  // product build has no way to reach this branch.
  store->fs_ = rocksdb::FileSystem::Default();
#else
  auto provider = std::make_shared<KeywardEncryptionProvider>(store->dictionary_);
  store->fs_ = NewKeywardEncryptedFs(rocksdb::FileSystem::Default(), provider);
#endif
  store->env_ = rocksdb::NewCompositeEnv(store->fs_);

  rocksdb::Options opts = store->BaseOptions(create);
  opts.wal_recovery_mode = recovery;
  store->AttachReencryptListener(&opts);
  store->AttachHealthListener(&opts);

  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, store->options_.dir, &db);
  if (!s.ok()) {
    absl::Status st =
        FromRocks(s, absl::StrCat("cannot open the store of cluster ", store->options_.cluster_id));
    if (!absl::IsDataLoss(st)) return st;
    return absl::DataLossError(absl::StrCat(st.message(), store->WalDamageNote()));
  }
  store->db_.reset(db);
  ASSIGN_OR_RETURN(bool rotated, store->RotateDataKeyIfDue());
  (void)rotated;
  return store;
}

ClusterStore::~ClusterStore() {
  if (db_) {
    db_->FlushWAL(true).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
    db_.reset();
  }
  // The block cache is shared by every cluster and holds plaintext blocks; RocksDB 7.8 has no
  // per-database erase (cache keys derive from internal session ids) and a per-cluster cache
  // would give up the shared memory budget. With the database closed none of this cluster's
  // entries is referenced any more, so dropping every unreferenced entry drops all of them (and,
  // with wipe-on-free, wipes them). Other clusters only lose warm blocks, which they re-read on
  // demand; pause and key loss are rare. Entries in use elsewhere (other clusters' open
  // iterators, the write-buffer manager's reservations) stay.
  if (shared_ != nullptr && shared_->block_cache != nullptr) {
    shared_->block_cache->EraseUnRefEntries();
  }
  WipeStaleStack();  // blocks this thread read (see crypto/stack_wipe.h)
}

absl::StatusOr<std::optional<StoredValue>> ClusterStore::Get(std::string_view key) {
  std::string raw;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &raw);
  if (s.IsNotFound()) return std::nullopt;
  RETURN_IF_ERROR(FromRocks(s, "read failed"));
  ASSIGN_OR_RETURN(StoredValue v, DecodeValue(raw));
  if (v.expire_at_ms != 0 && v.expire_at_ms <= NowMs()) {
    // Expired reads as absent whether or not the clean-up write works: a degraded (read-only)
    // or full store still answers reads rightly; the key is removed by a later read or write.
    absl::Status st =
        WriteStatus(db_->Delete(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size())),
                    "delete of expired key failed");
    if (!st.ok()) {
      LogWarn("cluster.storage_error", std::string(st.message()),
              {{"cluster_id", options_.cluster_id}});
    }
    return std::nullopt;
  }
  return v;
}

bool ClusterStore::GetIfCached(std::string_view key, std::optional<StoredValue>* value) {
  rocksdb::ReadOptions ro;
  ro.read_tier = rocksdb::kBlockCacheTier;  // Incomplete rather than a file read
  std::string raw;
  rocksdb::Status s = db_->Get(ro, rocksdb::Slice(key.data(), key.size()), &raw);
  if (s.IsNotFound()) {
    value->reset();
    return true;
  }
  if (!s.ok()) return false;
  absl::StatusOr<StoredValue> v = DecodeValue(raw);
  if (!v.ok() || (v->expire_at_ms != 0 && v->expire_at_ms <= NowMs())) return false;
  *value = *std::move(v);
  return true;
}

absl::Status ClusterStore::Put(std::string_view key, const StoredValue& value) {
  return WriteStatus(
      db_->Put(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size()), EncodeValue(value)),
      "write failed");
}

absl::Status ClusterStore::PutMany(
    const std::vector<std::pair<std::string, StoredValue>>& entries) {
  rocksdb::WriteBatch batch;
  for (const auto& [k, v] : entries) {
    RETURN_IF_ERROR(FromRocks(batch.Put(k, EncodeValue(v)), "batch failed"));
  }
  return WriteStatus(db_->Write(rocksdb::WriteOptions(), &batch), "write failed");
}

absl::StatusOr<bool> ClusterStore::Delete(std::string_view key) {
  ASSIGN_OR_RETURN(std::optional<StoredValue> existing, Get(key));
  if (!existing) return false;
  RETURN_IF_ERROR(
      WriteStatus(db_->Delete(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size())),
                  "delete failed"));
  return true;
}

absl::Status ClusterStore::DeleteAll() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  rocksdb::WriteBatch batch;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    RETURN_IF_ERROR(FromRocks(batch.Delete(it->key()), "batch failed"));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "scan failed"));
  return WriteStatus(db_->Write(rocksdb::WriteOptions(), &batch), "flush of all keys failed");
}

std::unique_ptr<rocksdb::Iterator> ClusterStore::IteratorAfter(std::string_view after) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  if (after.empty()) {
    it->SeekToFirst();
  } else {
    it->Seek(rocksdb::Slice(after.data(), after.size()));
    if (it->Valid() && it->key() == rocksdb::Slice(after.data(), after.size())) it->Next();
  }
  return it;
}

absl::Status ClusterStore::ScanKeys(std::string_view after, size_t limit,
                                    std::vector<std::string>* keys, std::string* next) {
  next->clear();
  int64_t now = NowMs();
  std::unique_ptr<rocksdb::Iterator> it = IteratorAfter(after);
  size_t examined = 0;
  for (; it->Valid() && examined < limit; it->Next(), ++examined) {
    if (!Expired(std::string_view(it->value().data(), it->value().size()), now)) {
      keys->push_back(it->key().ToString());
    }
    *next = it->key().ToString();
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "scan failed"));
  if (!it->Valid()) next->clear();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ClusterStore::CountLiveKeys() {
  int64_t now = NowMs();
  uint64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!Expired(std::string_view(it->value().data(), it->value().size()), now)) ++n;
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "scan failed"));
  return n;
}

uint64_t ClusterStore::LatestSequenceNumber() const { return db_->GetLatestSequenceNumber(); }

absl::StatusOr<std::optional<uint64_t>> ClusterStore::CountKeysUpTo(size_t limit) {
  int64_t now = NowMs();
  uint64_t n = 0, examined = 0;
  rocksdb::ReadOptions ro;
  // Tombstones count against the limit too (a flushed cluster is full of them until compaction).
  ro.max_skippable_internal_keys = limit;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (++examined > limit) return std::nullopt;
    if (!Expired(std::string_view(it->value().data(), it->value().size()), now)) ++n;
  }
  if (it->status().IsIncomplete()) return std::nullopt;
  RETURN_IF_ERROR(FromRocks(it->status(), "scan failed"));
  return n;
}

absl::StatusOr<uint64_t> ClusterStore::EstimateKeyCount() {
  uint64_t n = 0;
  if (!db_->GetIntProperty("rocksdb.estimate-num-keys", &n)) {
    return absl::InternalError("RocksDB has no rocksdb.estimate-num-keys");
  }
  return n;
}

absl::Status ClusterStore::DeleteKeys(std::string_view after, size_t limit, std::string* next) {
  next->clear();
  std::unique_ptr<rocksdb::Iterator> it = IteratorAfter(after);
  rocksdb::WriteBatch batch;
  size_t examined = 0;
  for (; it->Valid() && examined < limit; it->Next(), ++examined) {
    RETURN_IF_ERROR(FromRocks(batch.Delete(it->key()), "batch failed"));
    *next = it->key().ToString();
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "scan failed"));
  if (!it->Valid()) next->clear();
  if (batch.Count() == 0) return absl::OkStatus();
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "flush of all keys failed");
}

absl::Status ClusterStore::FlushWal(bool sync) {
  return WriteStatus(db_->FlushWAL(sync), sync ? "WAL sync failed" : "WAL write failed");
}

// FlushWAL(true), not SyncWAL(): with manual_wal_flush, SyncWAL syncs only what already left the
// buffer.
absl::Status ClusterStore::SyncWal() { return FlushWal(true); }

absl::Status ClusterStore::Flush() {
  return WriteStatus(db_->Flush(rocksdb::FlushOptions()), "flush failed");
}

absl::Status ClusterStore::CompactAll() {
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return FromRocks(db_->CompactRange(o, nullptr, nullptr), "compaction failed");
}

absl::StatusOr<bool> ClusterStore::RotateDataKeyIfDue() {
  return dictionary_->RotateIfOlderThan(options_.data_key_rotation_seconds,
                                        static_cast<uint64_t>(NowMs() / 1000));
}

}  // namespace keyward
