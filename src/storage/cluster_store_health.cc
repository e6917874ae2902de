// ClusterStore's storage health: background errors that stop writes (degraded), resuming after
// space is freed, and Repair of a store whose files are damaged, with an account of what it drops.

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rocksdb/listener.h"
#include "rocksdb/table_properties.h"
#include "storage/cluster_store.h"
#include "storage/encryption_provider.h"
#include "storage/rocks_status.h"
#include "util/bytes.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

const char* ReasonText(rocksdb::BackgroundErrorReason reason) {
  switch (reason) {
    case rocksdb::BackgroundErrorReason::kFlush:
    case rocksdb::BackgroundErrorReason::kFlushNoWAL:
      return "a flush of the memtable to disk failed";
    case rocksdb::BackgroundErrorReason::kCompaction:
      return "a background compaction failed";
    case rocksdb::BackgroundErrorReason::kWriteCallback:
    case rocksdb::BackgroundErrorReason::kMemTable:
      return "a write to the write-ahead log failed";
    case rocksdb::BackgroundErrorReason::kManifestWrite:
    case rocksdb::BackgroundErrorReason::kManifestWriteNoWAL:
      return "a write of the MANIFEST (the list of live files) failed";
  }
  return "a background operation failed";
}

// CRC-32C (Castagnoli), as RocksDB's WAL records carry it, masked.
uint32_t Crc32c(uint32_t crc, const char* data, size_t n) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc = kTable[(crc ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (crc >> 8);
  }
  return ~crc;
}
uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}
uint32_t Le32(const char* p) {
  return static_cast<uint32_t>(static_cast<uint8_t>(p[0])) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3])) << 24;
}
uint64_t Le64(const char* p) {
  return static_cast<uint64_t>(Le32(p)) | static_cast<uint64_t>(Le32(p + 4)) << 32;
}

// What a WAL holds, read the way RocksDB's log reader does (32 KiB blocks of checksummed
// fragments), skipping past damage to the next block as kSkipAnyCorruptedRecords would: each
// readable write batch (sequence, count), and where the first damage starts.
struct WalBatch {
  uint64_t sequence = 0;
  uint32_t count = 0;
};
struct WalScan {
  uint64_t size = 0;
  std::vector<WalBatch> batches;
  std::optional<uint64_t> first_damage;  // logical offset
  uint64_t damaged = 0;                  // stretches skipped
};

WalScan ScanWal(const std::string& data) {
  constexpr size_t kBlock = 32768;
  WalScan out;
  out.size = data.size();
  std::string assembling;
  bool in_fragment = false;
  auto damaged = [&](uint64_t at) {
    if (!out.first_damage) out.first_damage = at;
    ++out.damaged;
    in_fragment = false;
    assembling.clear();
  };
  auto batch_done = [&](const std::string& rep) {
    if (rep.size() >= 12) out.batches.push_back({Le64(rep.data()), Le32(rep.data() + 8)});
  };
  size_t pos = 0;
  while (pos < data.size()) {
    size_t block_end = std::min(data.size(), (pos / kBlock + 1) * kBlock);
    if (block_end - pos < 7) {  // the trailer of a block
      pos = block_end;
      continue;
    }
    const char* h = data.data() + pos;
    uint32_t length = static_cast<uint8_t>(h[4]) | static_cast<uint32_t>(static_cast<uint8_t>(h[5]))
                                                       << 8;
    uint8_t type = static_cast<uint8_t>(h[6]);
    size_t header = type >= 5 && type <= 8 ? 11 : 7;
    if (type == 0 && length == 0) {  // preallocated zeros: the end of what was written
      break;
    }
    if (pos + header + length > block_end || (type > 8 && type != 9 && type != 10)) {
      damaged(pos);  // a bad length or type (or a torn tail): go on at the next block
      pos = block_end;
      continue;
    }
    uint32_t crc = Crc32c(0, h + 6, 1);
    if (header == 11) crc = Crc32c(crc, h + 7, 4);
    crc = Crc32c(crc, h + header, length);
    if (crc != Unmask(Le32(h))) {
      damaged(pos);
      pos = block_end;
      continue;
    }
    std::string payload(h + header, length);
    pos += header + length;
    switch (type) {
      case 1:
      case 5:
        batch_done(payload);
        in_fragment = false;
        break;
      case 2:
      case 6:
        assembling = payload;
        in_fragment = true;
        break;
      case 3:
      case 7:
        if (in_fragment) assembling += payload;
        break;
      case 4:
      case 8:
        if (in_fragment) batch_done(assembling + payload);
        in_fragment = false;
        assembling.clear();
        break;
      default:  // compression / timestamp metadata records
        break;
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadWholeFileDecrypted(rocksdb::FileSystem& fs,
                                                   const std::string& path) {
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  RETURN_IF_ERROR(FromRocks(fs.NewSequentialFile(path, rocksdb::FileOptions(), &file, nullptr),
                            absl::StrCat("cannot read ", path)));
  std::string out;
  std::string buf(1 << 20, '\0');
  for (;;) {
    rocksdb::Slice got;
    RETURN_IF_ERROR(
        FromRocks(file->Read(buf.size(), rocksdb::IOOptions(), &got, buf.data(), nullptr),
                  absl::StrCat("cannot read ", path)));
    if (got.empty()) break;
    out.append(got.data(), got.size());
  }
  return out;
}

std::vector<std::string> WalFiles(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".log" && e.file_size(ec) > 0) {
      names.push_back(e.path().string());
    }
  }
  std::sort(names.begin(), names.end());  // zero-padded numbers: oldest first
  return names;
}

std::set<std::string> LostFiles(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir + "/lost", ec)) {
    if (e.is_regular_file()) names.insert(e.path().filename().string());
  }
  return names;
}

}  // namespace

class ClusterStore::HealthListener : public rocksdb::EventListener {
 public:
  explicit HealthListener(std::string cluster_id) : cluster_id_(std::move(cluster_id)) {}
  const char* Name() const override { return "keyward-health"; }
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* bg_error) override {
    if (bg_error == nullptr || bg_error->ok()) return;
    // Soft errors too: a no-space error starts soft and still refuses writes until resumed.
    absl::Status st = FromRocks(*bg_error, ReasonText(reason));
    LogError("cluster.writes_stopped",
             "cluster " + cluster_id_ + ": writes stopped: " + std::string(st.message()),
             {{"cluster_id", cluster_id_}});
    std::lock_guard<std::mutex> lock(mu_);
    error_ = st;
  }
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (info.new_bg_error.ok()) Clear();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = absl::OkStatus();
  }
  absl::Status Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  const std::string cluster_id_;
  mutable std::mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

void ClusterStore::AttachHealthListener(rocksdb::Options* opts) {
  health_ = std::make_shared<HealthListener>(options_.cluster_id);
  opts->listeners.push_back(health_);
}

absl::Status ClusterStore::WritesStoppedBy() const {
  return health_ ? health_->Get() : absl::OkStatus();
}

absl::Status ClusterStore::Resume() {
  if (WritesStoppedBy().ok()) return absl::OkStatus();
  RETURN_IF_ERROR(FromRocks(db_->Resume(), "resume after a background error failed"));
  health_->Clear();
  return absl::OkStatus();
}

absl::Status ClusterStore::WriteStatus(const rocksdb::Status& s, std::string_view what) const {
  if (s.ok()) return absl::OkStatus();
  absl::Status stopped = WritesStoppedBy();
  absl::Status own = FromRocks(s, what);
  if (stopped.ok()) return own;
  const std::string& id = options_.cluster_id;
  if (absl::IsResourceExhausted(stopped) || absl::IsResourceExhausted(own)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("disk full: cluster ", id,
                     " stopped writing because the server's data volume is full; reads still "
                     "work, and writes resume by themselves once space is freed"));
  }
  return absl::UnavailableError(absl::StrCat(
      "cluster ", id, " is degraded (read-only): ",
      absl::IsDataLoss(stopped) ? "storage corruption was found in a background compaction or flush"
                                : "a background write to its storage failed",
      "; reads still work, writes are refused. The operator sees why in `keyward cluster get ", id,
      "`; `keyward cluster repair ", id, " --accept-data-loss` drops the damaged data"));
}

std::string ClusterStore::WalDamageNote() const {
  std::string out;
  for (const std::string& wal : WalFiles(options_.dir)) {
    auto bytes = ReadWholeFileDecrypted(*fs_, wal);
    if (!bytes.ok()) continue;
    WalScan scan = ScanWal(*bytes);
    if (scan.first_damage) {
      absl::StrAppend(&out, "; write-ahead log ", std::filesystem::path(wal).filename().string(),
                      " is damaged at byte ", *scan.first_damage, " of ", scan.size);
    }
  }
  return out;
}

std::string RepairReport::Summary() const {
  if (method == "none needed") return "the store opened without repair; nothing was dropped";
  std::string out = absl::StrCat("recovered by ", method, " to sequence ", last_sequence_kept);
  bool wal_loss = writes_dropped > 0 || damaged_stretches > 0;
  if (wal_loss) {
    absl::StrAppend(&out, "; dropped ", exact ? "" : "at least ", writes_dropped, " write(s)");
    if (first_sequence_dropped != 0) {
      absl::StrAppend(&out, " (sequence numbers ", first_sequence_dropped, "-",
                      last_sequence_dropped, exact ? "" : " or more", ")");
    }
    absl::StrAppend(&out, " from the write-ahead log: ", records_dropped,
                    " readable record(s) after the damage and ", damaged_stretches,
                    " damaged stretch(es), ", bytes_dropped,
                    " byte(s) from the damage to the end of the log");
  }
  if (!files_set_aside.empty()) {
    absl::StrAppend(
        &out, "; damaged table file(s) set aside in lost/, their keys are gone (",
        entries_set_aside > 0 ? absl::StrCat(entries_set_aside, " entries") : "count unknown",
        "): ", absl::StrJoin(files_set_aside, ", "));
  }
  if (!wal_loss && files_set_aside.empty()) absl::StrAppend(&out, "; nothing was dropped");
  if (!damage.empty()) absl::StrAppend(&out, " (damage: ", damage, ")");
  return out;
}

absl::StatusOr<RepairReport> ClusterStore::Repair(ClusterStoreOptions options,
                                                  MasterKeyProvider& provider,
                                                  std::shared_ptr<SharedStorageResources> shared) {
  if (!options.now_ms) options.now_ms = SystemNowMs;
  std::string dict_path = options.dir + "/" + KeyDictionary::kFileName;
  auto dict = KeyDictionary::Open(dict_path, options.cluster_id, provider);
  if (absl::IsDataLoss(dict.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        dict.status().message(),
        "; repair cannot rebuild the key dictionary (it holds the data keys every file is "
        "encrypted with): restore keys.dict from a backup of this cluster"));
  }
  RETURN_IF_ERROR(dict.status());
  std::shared_ptr<KeyDictionary> dictionary = *std::move(dict);

  RepairReport report;
  // Entries per live SST, for the account of what RepairDB sets aside (known only when the
  // store opens: damage inside an SST is found by reading it, as a compaction did).
  std::map<std::string, uint64_t> sst_entries;
  bool sst_damage = false;
  auto clean = OpenDb(options, dictionary, shared, /*create=*/false);
  if (clean.ok()) {
    rocksdb::DB& db = *(*clean)->db_;
    rocksdb::Status verified = db.VerifyChecksum();
    if (verified.ok()) {
      report.method = "none needed";
      report.last_sequence_kept = db.GetLatestSequenceNumber();
      return report;
    }
    report.damage =
        std::string(FromRocks(verified, "checksum verification of every SST").message());
    rocksdb::TablePropertiesCollection props;
    if (db.GetPropertiesOfAllTables(&props).ok()) {
      for (const auto& [file, p] : props) {
        sst_entries[std::filesystem::path(file).filename().string()] = p->num_entries;
      }
    }
    clean->reset();
    sst_damage = true;
  } else {
    if (!absl::IsDataLoss(clean.status())) return clean.status();
    report.damage = std::string(clean.status().message());
  }

  // What the WALs hold before anything is dropped.
  std::unique_ptr<ClusterStore> host(new ClusterStore());
  host->options_ = options;
  host->shared_ = shared;
  host->dictionary_ = dictionary;
  auto enc = std::make_shared<KeywardEncryptionProvider>(dictionary);
  host->fs_ = rocksdb::NewEncryptedFS(rocksdb::FileSystem::Default(), enc);
  host->env_ = rocksdb::NewCompositeEnv(host->fs_);
  std::vector<WalScan> scans;
  for (const std::string& wal : WalFiles(options.dir)) {
    auto bytes = ReadWholeFileDecrypted(*host->fs_, wal);
    if (bytes.ok()) scans.push_back(ScanWal(*bytes));
  }
  uint64_t wal_last = 0;
  for (const auto& scan : scans) {
    for (const auto& b : scan.batches) wal_last = std::max(wal_last, b.sequence + b.count - 1);
  }

  // First choice: replay the WALs up to the damage and drop the rest (the files themselves are
  // fine, only the log is cut). Then RepairDB, which rebuilds the MANIFEST from the SSTs, salvages
  // what it can read of the WALs and sets damaged files aside in lost/.
  std::set<std::string> lost_before = LostFiles(options.dir);
  absl::StatusOr<std::unique_ptr<ClusterStore>> pit = absl::DataLossError("SST damage");
  if (!sst_damage) {
    pit = OpenDb(options, dictionary, shared, /*create=*/false,
                 rocksdb::WALRecoveryMode::kPointInTimeRecovery);
  }
  uint64_t kept = 0;
  if (pit.ok()) {
    report.method = "point-in-time WAL recovery";
    kept = (*pit)->db_->GetLatestSequenceNumber();
    // Flushed and closed: the next open replays nothing of the damaged log.
    RETURN_IF_ERROR((*pit)->Flush());
    pit->reset();
  } else {
    report.method = "RepairDB";
    rocksdb::Options opts = host->BaseOptions(/*create=*/false);
    RETURN_IF_ERROR(FromRocks(rocksdb::RepairDB(options.dir, opts),
                              absl::StrCat("repair of cluster ", options.cluster_id, " failed")));
    auto reopened = OpenDb(options, dictionary, shared, /*create=*/false);
    if (!reopened.ok()) {
      return absl::Status(
          reopened.status().code(),
          absl::StrCat("the store still does not open after RepairDB: ",
                       reopened.status().message(), "; restore the cluster from a backup"));
    }
    kept = (*reopened)->db_->GetLatestSequenceNumber();
    RETURN_IF_ERROR((*reopened)->Flush());
    reopened->reset();
    // RepairDB moves every WAL (after salvaging it into a table) and the old MANIFEST to lost/
    // too; only table files there hold keys that are gone.
    for (const std::string& f : LostFiles(options.dir)) {
      if (lost_before.count(f) || f.size() < 4 || f.substr(f.size() - 4) != ".sst") continue;
      report.files_set_aside.push_back(f);
      if (auto it = sst_entries.find(f); it != sst_entries.end()) {
        report.entries_set_aside += it->second;
      }
    }
  }
  report.last_sequence_kept = kept;
  // Sequence numbers are dense: every one after `kept` up to the newest the WALs name was
  // acknowledged and is gone. The damaged record itself is unreadable, so when no readable record
  // follows it the figures are lower bounds.
  bool any_after = false;
  for (const auto& scan : scans) {
    for (const auto& b : scan.batches) {
      if (b.sequence > kept) {
        ++report.records_dropped;
        any_after = true;
      }
    }
    if (scan.first_damage) report.bytes_dropped += scan.size - *scan.first_damage;
    report.damaged_stretches += scan.damaged;
  }
  if (wal_last > kept) {
    report.first_sequence_dropped = kept + 1;
    report.last_sequence_dropped = wal_last;
    report.writes_dropped = wal_last - kept;
  }
  report.exact = any_after || report.damaged_stretches == 0;
  if (!any_after && report.damaged_stretches > 0 && wal_last <= kept) {
    report.first_sequence_dropped = kept + 1;
    report.last_sequence_dropped = kept + 1;
    report.writes_dropped = std::max<uint64_t>(report.writes_dropped, 1);
  }
  return report;
}

}  // namespace keyward
