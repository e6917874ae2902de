#include "backup/cluster_backup.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class ClusterBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-backup-" + *RandomHex(6));
    fs::create_directories(root_ / "clusters");
    escrow_ = *EscrowProvider::LoadOrCreate((root_ / "escrow.key").string());
    shared_ = SharedStorageResources::New(8 << 20, 16 << 20);
    dest_ = *LocalDirectoryDestination::New((root_ / "backups").string());
    ClusterStoreOptions o;
    o.dir = (root_ / "clusters" / "c-1").string();
    o.cluster_id = "c-1";
    auto s = ClusterStore::Create(o, *escrow_, shared_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    for (int i = 0; i < 300; ++i) {
      std::string key = "key-" + std::to_string(i);
      std::string value = "canary-" + std::to_string(i) + std::string(10 + (i * 97) % 3000, 'v');
      ASSERT_TRUE(store_->Put(key, {value, 0}).ok());
      data_[key] = value;
    }
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }

  absl::StatusOr<BackupSummary> Backup(const std::string& id) {
    BackupJob job;
    job.backup_id = id;
    job.cluster_id = "c-1";
    job.project_id = "p-1";
    job.key_record_id = "k-1";
    job.created_at = 1700000000;
    job.chunk_size = 4096;  // many chunks per file
    job.checkpoint_dir = (root_ / "clusters" / "c-1" / ("backup-checkpoint-" + id)).string();
    return BackUpCluster(*store_, *escrow_, *dest_, job, nullptr);
  }

  absl::StatusOr<BackupManifest> Restore(const std::string& id, MasterKeyProvider& p) {
    return RestoreBackup(*dest_, p, id, "c-new", Target(), 1700000100, nullptr);
  }
  std::string Target() const { return (root_ / "clusters" / "c-new").string(); }
  fs::path Obj(const std::string& name) const { return root_ / "backups" / name; }
  // The data chunks of file `f` of backup `id`, in order.
  std::vector<fs::path> Chunks(const std::string& id, int f) {
    std::vector<fs::path> out;
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%06d-", f);
    for (const auto& e : fs::directory_iterator(Obj(id + "/data"))) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // The index of the largest file of backup `id` (an SST with several chunks).
  int BigFile(const std::string& id) {
    int best = 0;
    size_t most = 0;
    for (int f = 0; f < 64; ++f) {
      size_t n = fs::exists(Obj(id + "/data")) ? Chunks(id, f).size() : 0;
      if (n > most) most = n, best = f;
    }
    EXPECT_GE(most, 3u);
    return best;
  }
  void ExpectRefused(const std::string& id, std::string_view words) {
    auto r = Restore(id, *escrow_);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(std::string(words)), std::string::npos) << r.status();
    EXPECT_FALSE(fs::exists(Target())) << "a refused restore left its directory";
  }
  static std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void Write(const fs::path& p, const std::string& s) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
  }

  fs::path root_;
  std::unique_ptr<EscrowProvider> escrow_;
  std::shared_ptr<SharedStorageResources> shared_;
  std::unique_ptr<LocalDirectoryDestination> dest_;
  std::unique_ptr<ClusterStore> store_;
  std::map<std::string, std::string> data_;
};

TEST_F(ClusterBackupTest, RoundTripRestoresEveryKeyAndNoPlaintextIsStored) {
  uint64_t last_done = 0, last_total = 0;
  auto summary = Backup("b-1");
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_GT(summary->bytes, 20000u);  // compressed SSTs
  EXPECT_GT(summary->files, 2u);
  EXPECT_EQ(summary->key_id, escrow_->key_id());
  EXPECT_FALSE(fs::exists(root_ / "clusters" / "c-1" / "backup-checkpoint-b-1"));
  for (const auto& e : fs::recursive_directory_iterator(root_ / "backups")) {
    if (!e.is_regular_file()) continue;
    EXPECT_EQ((fs::status(e.path()).permissions() & fs::perms::all),
              fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(Read(e.path()).find("canary-"), std::string::npos) << e.path();
  }
  auto m = RestoreBackup(*dest_, *escrow_, "b-1", "c-new", Target(), 1700000100,
                         [&](uint64_t d, uint64_t t) { last_done = d, last_total = t; });
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(last_done, last_total);
  EXPECT_EQ(last_done, summary->bytes);
  ClusterStoreOptions o;
  o.dir = Target();
  o.cluster_id = "c-new";
  auto restored = ClusterStore::Open(o, *escrow_, shared_);
  ASSERT_TRUE(restored.ok()) << restored.status();
  for (const auto& [k, v] : data_) {
    auto got = (*restored)->Get(k);
    ASSERT_TRUE(got.ok() && got->has_value()) << k;
    EXPECT_EQ((*got)->data, v);
  }
  EXPECT_EQ(*(*restored)->CountLiveKeys(), data_.size());
}

TEST_F(ClusterBackupTest, FlippedByteInAChunkIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  auto chunks = Chunks("b-1", BigFile("b-1"));
  std::string bytes = Read(chunks[1]);
  bytes[bytes.size() / 2] ^= 0x20;
  Write(chunks[1], bytes);
  ExpectRefused("b-1", "failed authentication: chunk 1 of file");
}

TEST_F(ClusterBackupTest, DroppedLastChunkIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  auto chunks = Chunks("b-1", BigFile("b-1"));
  fs::remove(chunks.back());
  ExpectRefused("b-1", "is incomplete");
}

TEST_F(ClusterBackupTest, SwappedChunksAreRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  auto chunks = Chunks("b-1", BigFile("b-1"));
  std::string a = Read(chunks[0]), b = Read(chunks[1]);
  Write(chunks[0], b);
  Write(chunks[1], a);
  ExpectRefused("b-1", "failed authentication: chunk 0 of file");
}

TEST_F(ClusterBackupTest, ChunkFromAnotherBackupOfTheClusterIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  ASSERT_TRUE(Backup("b-2").ok());
  int f = BigFile("b-1");
  auto mine = Chunks("b-1", f);
  fs::copy_file(Obj("b-2/data") / mine[0].filename(), mine[0],
                fs::copy_options::overwrite_existing);
  ExpectRefused("b-1", "failed authentication");
}

TEST_F(ClusterBackupTest, ManifestOfAnotherBackupIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  ASSERT_TRUE(Backup("b-2").ok());
  fs::copy_file(Obj("b-2/manifest"), Obj("b-1/manifest"), fs::copy_options::overwrite_existing);
  ExpectRefused("b-1", "belongs to backup b-2");
}

TEST_F(ClusterBackupTest, MissingManifestMeansIncompleteBackup) {
  ASSERT_TRUE(Backup("b-1").ok());
  fs::remove(Obj("b-1/manifest"));
  ExpectRefused("b-1", "is not complete");
}

TEST_F(ClusterBackupTest, AnotherEscrowKeyCannotRestore) {
  ASSERT_TRUE(Backup("b-1").ok());
  auto other = EscrowProvider::LoadOrCreate((root_ / "other.key").string());
  ASSERT_TRUE(other.ok());
  auto r = Restore("b-1", **other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot unwrap the key of backup b-1"), std::string::npos)
      << r.status();
  EXPECT_FALSE(fs::exists(Target()));
}

TEST_F(ClusterBackupTest, ClosingStoreStopsTheBackupAndLeavesNoObjects) {
  store_->StopBackgroundWork();  // what ClusterRuntime does when the cluster closes
  auto r = Backup("b-1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_FALSE(fs::exists(Obj("b-1")));
  EXPECT_FALSE(fs::exists(root_ / "clusters" / "c-1" / "backup-checkpoint-b-1"));
}

TEST_F(ClusterBackupTest, DeleteRemovesEveryObject) {
  ASSERT_TRUE(Backup("b-1").ok());
  ASSERT_TRUE(DeleteBackupObjects(*dest_, "b-1").ok());
  EXPECT_FALSE(fs::exists(Obj("b-1")));
  EXPECT_TRUE(dest_->List("b-1/")->empty());
}

}  // namespace
}  // namespace keyward
