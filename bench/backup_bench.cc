// bench/backup: encrypted backup and restore vs what a user would do instead, side by side in
// one run, on one cluster store.
//   backup:  BackUpCluster (checkpoint → read through the encrypted file system → SHA-256 → seal
//            → LocalDirectoryDestination) vs a plain copy of the same checkpoint: its files read
//            through the same encrypted file system, written as plain files, fsync each, fsync
//            the directory (cp + sync). Both include taking and removing the checkpoint.
//   restore: RestoreBackup (verify, decrypt, re-encrypt under a fresh dictionary) vs a plain copy
//            of those plain files back into a new cluster directory through a fresh dictionary's
//            encrypted file system, fsync each file and the directory.
// MB/s are plaintext bytes over wall-clock seconds; the modes alternate which goes first.
// Environment: BENCH_MB (default 256: store size, values of 10 B–64 KiB, random bytes),
// ROUNDS (default 5), BENCH_DIR (default /tmp), BENCH_CHUNK (backup chunk size, default the
// format's). Prints each round, then medians (min..max) and the ratios (target >= 0.9).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backup/cluster_backup.h"
#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"
#include "rocksdb/env_encryption.h"
#include "storage/encryption_provider.h"
#include "storage/key_dictionary.h"
#include "util/file_util.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

#define CHECK_OK(expr)                                                                       \
  do {                                                                                       \
    absl::Status _st = (expr);                                                               \
    if (!_st.ok()) {                                                                         \
      fprintf(stderr, "bench/backup: %s: %s\n", #expr, std::string(_st.ToString()).c_str()); \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

uint64_t EnvU64(const char* name, uint64_t def) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, nullptr, 10) : def;
}

// CPU seconds (user + system) of this process so far: every thread, RocksDB's included.
double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The kernel's share of that (system time): page cache, file system, syscalls.
double SysSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

// Page faults (minor: memory first touched, page cache mapped) so far.
double Faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_minflt + ru.ru_majflt);
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      fprintf(stderr, "bench/backup: write %s: %s\n", path.c_str(), ErrnoText(errno).c_str());
      exit(1);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// The plain copy of a checkpoint: read through the store's encrypted file system, write plain
// files, fsync each, then the directory. Returns plaintext bytes copied.
uint64_t PlainBackup(ClusterStore& store, const std::string& checkpoint, const std::string& out,
                     size_t piece) {
  CHECK_OK(store.CreateCheckpoint(checkpoint));
  CHECK_OK(MakeDirs(out, 0700));
  uint64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(checkpoint)) {
    std::string name = e.path().filename().string();
    std::string path = out + "/" + name;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) exit(1);
    CHECK_OK(store.ReadDecrypted(e.path().string(), piece,
                                 [&](uint64_t, std::string_view b) -> absl::Status {
                                   WriteAll(fd, b.data(), b.size(), path);
                                   bytes += b.size();
                                   return absl::OkStatus();
                                 }));
    if (fsync(fd) != 0) exit(1);
    close(fd);
  }
  CHECK_OK(FsyncDirectory(out));
  fs::remove_all(checkpoint);
  return bytes;
}

// The plain copy back: plain files into a new cluster directory through a fresh dictionary's
// encrypted file system (as a restore must write them), fsync each, then the directory.
uint64_t PlainRestore(MasterKeyProvider& provider, const std::string& from, const std::string& to,
                      size_t piece) {
  CHECK_OK(MakeDirs(to, 0700));
  auto dict = KeyDictionary::Create(to + "/" + KeyDictionary::kFileName, "c-plain", provider,
                                    static_cast<uint64_t>(time(nullptr)));
  CHECK_OK(dict.status());
  std::shared_ptr<KeyDictionary> shared = *std::move(dict);
  auto efs = rocksdb::NewEncryptedFS(rocksdb::FileSystem::Default(),
                                     std::make_shared<KeywardEncryptionProvider>(shared));
  std::vector<char> buf(piece);
  uint64_t bytes = 0;
  rocksdb::IOOptions io;
  for (const auto& e : fs::directory_iterator(from)) {
    std::unique_ptr<rocksdb::FSWritableFile> out;
    std::string path = to + "/" + e.path().filename().string();
    if (!efs->NewWritableFile(path, rocksdb::FileOptions(), &out, nullptr).ok()) exit(1);
    int fd = open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) exit(1);
    for (;;) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) exit(1);
      if (n == 0) break;
      if (!out->Append(rocksdb::Slice(buf.data(), static_cast<size_t>(n)), io, nullptr).ok()) {
        exit(1);
      }
      bytes += static_cast<uint64_t>(n);
    }
    close(fd);
    if (!out->Sync(io, nullptr).ok() || !out->Close(io, nullptr).ok()) exit(1);
  }
  CHECK_OK(FsyncDirectory(to));
  return bytes;
}

struct Series {
  std::vector<double> v;
  double Median() const {
    auto s = v;
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
  }
  std::string Spread() const {
    char out[64];
    snprintf(out, sizeof(out), "%.0f..%.0f", *std::min_element(v.begin(), v.end()),
             *std::max_element(v.begin(), v.end()));
    return out;
  }
};

// The wall-clock ratio is the target; CPU per GB (every thread of the process) beside it, as on
// a shared machine the wall clock swings with other loads.
void Report(const char* what, const Series& enc, const Series& plain, const Series& enc_cpu,
            const Series& plain_cpu) {
  printf(
      "backup %s: encrypted %.0f MB/s (%s), plain copy %.0f MB/s (%s), ratio %.3f (target "
      ">= 0.9); CPU s/GB %.2f vs %.2f\n",
      what, enc.Median(), enc.Spread().c_str(), plain.Median(), plain.Spread().c_str(),
      enc.Median() / plain.Median(), enc_cpu.Median(), plain_cpu.Median());
}

int Main() {
  const uint64_t target_mb = EnvU64("BENCH_MB", 256);
  const int rounds = static_cast<int>(std::max<uint64_t>(1, EnvU64("ROUNDS", 5)));
  const uint32_t chunk = static_cast<uint32_t>(EnvU64("BENCH_CHUNK", kBackupChunkSize));
  const char* base = getenv("BENCH_DIR");
  fs::path root =
      fs::path(base && *base ? base : "/tmp") / ("kw-bench-backup-" + std::string(*RandomHex(6)));
  fs::create_directories(root / "clusters");
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{root};

  auto escrow = EscrowProvider::LoadOrCreate((root / "escrow.key").string());
  CHECK_OK(escrow.status());
  auto shared = SharedStorageResources::New(64 << 20, 64 << 20);
  ClusterStoreOptions o;
  o.dir = (root / "clusters" / "c-1").string();
  o.cluster_id = "c-1";
  auto created = ClusterStore::Create(o, **escrow, shared);
  CHECK_OK(created.status());
  std::unique_ptr<ClusterStore> store = *std::move(created);

  // Values of 10 B–64 KiB (uniform), random bytes: neither side gains from compression.
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> len(10, 64 << 10);
  uint64_t filled = 0, keys = 0;
  auto fill_start = Clock::now();
  while (filled < target_mb << 20) {
    std::vector<std::pair<std::string, StoredValue>> batch;
    for (size_t bytes = 0; bytes < (4 << 20) && filled < target_mb << 20;) {
      std::string v(len(rng), '\0');
      for (size_t i = 0; i < v.size(); i += 8) {
        uint64_t r = rng();
        memcpy(v.data() + i, &r, std::min<size_t>(8, v.size() - i));
      }
      bytes += v.size();
      filled += v.size();
      char key[32];
      snprintf(key, sizeof(key), "key-%010llu", static_cast<unsigned long long>(keys++));
      batch.emplace_back(key, StoredValue{std::move(v), 0});
    }
    CHECK_OK(store->PutMany(batch));
  }
  CHECK_OK(store->Flush());
  CHECK_OK(store->CompactAll());
  printf("bench/backup: %llu keys, %.0f MB of values (10 B-64 KiB), filled in %.1f s; %d rounds\n",
         static_cast<unsigned long long>(keys), filled / 1e6, Seconds(fill_start), rounds);

  // Each measured step is followed by deleting what it wrote, so every step starts alike (just
  // freed page cache: on a VM, pages the host reclaimed make the first writes into them slow,
  // which otherwise lands on whichever side runs second). The restores read a backup and a plain
  // copy made once, untimed, in a destination of their own.
  auto dest = LocalDirectoryDestination::New((root / "backups").string());
  CHECK_OK(dest.status());
  auto src_dest = LocalDirectoryDestination::New((root / "backups-src").string());
  CHECK_OK(src_dest.status());
  auto job_for = [&](const std::string& id) {
    BackupJob job;
    job.backup_id = id;
    job.cluster_id = "c-1";
    job.project_id = "p-1";
    job.key_record_id = "k-1";
    job.created_at = time(nullptr);
    job.chunk_size = chunk;
    job.checkpoint_dir = o.dir + "/backup-checkpoint-" + id;
    return job;
  };
  auto src = BackUpCluster(*store, **escrow, **src_dest, job_for("b-src"), nullptr);
  CHECK_OK(src.status());
  printf("bench/backup: a backup is %llu files, %llu objects, %.1f MB written\n",
         static_cast<unsigned long long>(src->files),
         static_cast<unsigned long long>(src->objects_written), src->bytes_written / 1e6);
  std::string plain_src = (root / "plain-src").string();
  PlainBackup(*store, o.dir + "/plain-checkpoint", plain_src, chunk);
  Series enc_backup, plain_backup, enc_restore, plain_restore, cpu_s[4];
  // After each step's cleanup: its deletions committed (journal, discards) before the next
  // step's clock starts, not inside its first fsync.
  auto settle = [&] {
    int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) syncfs(fd), close(fd);
  };
  settle();
  for (int r = 0; r < rounds; ++r) {
    std::string id = "b-" + std::to_string(r);
    std::string plain_dir = (root / ("plain-" + std::to_string(r))).string();
    std::string restored = (root / "clusters" / ("c-r" + std::to_string(r))).string();
    std::string plain_restored = (root / "clusters" / ("c-p" + std::to_string(r))).string();
    double eb = 0, pb = 0, er = 0, pr = 0;
    double cpu[4] = {};  // CPU seconds per GB: backup enc, plain; restore enc, plain
    double sys[4] = {};  // of which system time
    double flt[4] = {};  // page faults per MB
    // Warm-up, untimed: on this VM the first copy after the other phase runs up to 4x the CPU
    // of the next one, whichever side it is (page cache and host memory state).
    PlainBackup(*store, o.dir + "/plain-checkpoint", plain_dir, chunk);
    fs::remove_all(plain_dir);
    settle();
    for (int step = 0; step < 2; ++step) {
      bool encrypted = (step == 0) == (r % 2 == 0);
      auto start = Clock::now();
      double cpu0 = CpuSeconds(), sys0 = SysSeconds(), flt0 = Faults();
      if (encrypted) {
        auto s = BackUpCluster(*store, **escrow, **dest, job_for(id), nullptr);
        CHECK_OK(s.status());
        eb = s->bytes / 1e6 / Seconds(start);
        cpu[0] = (CpuSeconds() - cpu0) / (s->bytes / 1e9);
        sys[0] = (SysSeconds() - sys0) / (s->bytes / 1e9);
        flt[0] = (Faults() - flt0) / (s->bytes / 1e6);
        CHECK_OK(DeleteBackupObjects(**dest, id));
        CHECK_OK((*dest)->DeleteAll("shared/"));
        settle();
      } else {
        uint64_t bytes = PlainBackup(*store, o.dir + "/plain-checkpoint", plain_dir, chunk);
        pb = bytes / 1e6 / Seconds(start);
        cpu[1] = (CpuSeconds() - cpu0) / (bytes / 1e9);
        sys[1] = (SysSeconds() - sys0) / (bytes / 1e9);
        flt[1] = (Faults() - flt0) / (bytes / 1e6);
        fs::remove_all(plain_dir);
        settle();
      }
    }
    PlainRestore(**escrow, plain_src, plain_restored, chunk);  // warm-up, untimed
    fs::remove_all(plain_restored);
    settle();
    for (int step = 0; step < 2; ++step) {
      bool encrypted = (step == 0) == (r % 2 == 0);
      auto start = Clock::now();
      double cpu0 = CpuSeconds(), sys0 = SysSeconds(), flt0 = Faults();
      if (encrypted) {
        auto m =
            RestoreBackup(**src_dest, **escrow, "b-src", "c-r", restored, time(nullptr), nullptr);
        CHECK_OK(m.status());
        uint64_t bytes = 0;
        for (const auto& f : m->files) bytes += f.size;
        er = bytes / 1e6 / Seconds(start);
        cpu[2] = (CpuSeconds() - cpu0) / (bytes / 1e9);
        sys[2] = (SysSeconds() - sys0) / (bytes / 1e9);
        flt[2] = (Faults() - flt0) / (bytes / 1e6);
        if (r == 0) {
          // The restore is a working cluster with every key (checked once, untimed).
          ClusterStoreOptions ro;
          ro.dir = restored;
          ro.cluster_id = "c-r";
          auto opened = ClusterStore::Open(ro, **escrow, shared);
          CHECK_OK(opened.status());
          auto n = (*opened)->CountLiveKeys();
          CHECK_OK(n.status());
          if (*n != keys) {
            fprintf(stderr, "bench/backup: the restore holds %llu keys, not %llu\n",
                    static_cast<unsigned long long>(*n), static_cast<unsigned long long>(keys));
            return 1;
          }
          printf("bench/backup: the restore holds all %llu keys\n",
                 static_cast<unsigned long long>(keys));
        }
        fs::remove_all(restored);
        settle();
      } else {
        uint64_t bytes = PlainRestore(**escrow, plain_src, plain_restored, chunk);
        pr = bytes / 1e6 / Seconds(start);
        cpu[3] = (CpuSeconds() - cpu0) / (bytes / 1e9);
        sys[3] = (SysSeconds() - sys0) / (bytes / 1e9);
        flt[3] = (Faults() - flt0) / (bytes / 1e6);
        fs::remove_all(plain_restored);
        settle();
      }
    }
    printf(
        "round %d: backup %.0f vs %.0f MB/s (CPU %.2f vs %.2f s/GB, sys %.2f vs %.2f, faults/MB "
        "%.0f vs %.0f), restore %.0f vs %.0f MB/s (CPU %.2f vs %.2f s/GB, sys %.2f vs %.2f, "
        "faults/MB %.0f vs %.0f), encrypted vs plain\n",
        r + 1, eb, pb, cpu[0], cpu[1], sys[0], sys[1], flt[0], flt[1], er, pr, cpu[2], cpu[3],
        sys[2], sys[3], flt[2], flt[3]);
    fflush(stdout);
    for (int k = 0; k < 4; ++k) cpu_s[k].v.push_back(cpu[k]);
    enc_backup.v.push_back(eb);
    plain_backup.v.push_back(pb);
    enc_restore.v.push_back(er);
    plain_restore.v.push_back(pr);
  }
  {
    // Incremental: a full backup, 1 % of the keys rewritten, then a backup based on it.
    struct Refs : BackupFileRefs {
      std::map<std::string, int> held;
      absl::Status Add(const std::string&, const std::string& object) override {
        held[object]++;
        return absl::OkStatus();
      }
      absl::StatusOr<bool> Claim(const std::string&, const std::string& object) override {
        return held.count(object) ? (held[object]++, true) : false;
      }
    } refs;
    BackupJob full = job_for("b-full");
    full.refs = &refs;
    auto f = BackUpCluster(*store, **escrow, **dest, full, nullptr);
    CHECK_OK(f.status());
    std::vector<std::pair<std::string, StoredValue>> batch;
    for (uint64_t k = 0; k < keys; k += 100) {
      char key[32];
      snprintf(key, sizeof(key), "key-%010llu", static_cast<unsigned long long>(k));
      std::string v(len(rng), '\0');
      for (char& ch : v) ch = static_cast<char>(rng());
      batch.emplace_back(key, StoredValue{std::move(v), 0});
    }
    CHECK_OK(store->PutMany(batch));
    BackupJob incr = job_for("b-incr");
    incr.refs = &refs;
    incr.base_backup_id = "b-full";
    auto start = Clock::now();
    auto i = BackUpCluster(*store, **escrow, **dest, incr, nullptr);
    CHECK_OK(i.status());
    printf(
        "backup incremental: after rewriting %zu of %llu keys, %llu of %llu files reused: %llu "
        "objects, %.1f MB written (the full backup: %llu objects, %.1f MB) in %.2f s\n",
        batch.size(), static_cast<unsigned long long>(keys),
        static_cast<unsigned long long>(i->files_reused), static_cast<unsigned long long>(i->files),
        static_cast<unsigned long long>(i->objects_written), i->bytes_written / 1e6,
        static_cast<unsigned long long>(f->objects_written), f->bytes_written / 1e6,
        Seconds(start));
  }
  Report("create", enc_backup, plain_backup, cpu_s[0], cpu_s[1]);
  Report("restore", enc_restore, plain_restore, cpu_s[2], cpu_s[3]);
  return 0;
}

}  // namespace
}  // namespace keyward

int main() { return keyward::Main(); }
