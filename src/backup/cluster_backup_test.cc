#include "backup/cluster_backup.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

// The control plane's record of holders (control/backup_records.h), in memory.
class MemoryRefs : public BackupFileRefs {
 public:
  absl::Status Add(const std::string& backup_id, const std::string& object) override {
    holders_[object].insert(backup_id);
    return absl::OkStatus();
  }
  absl::StatusOr<bool> Claim(const std::string& backup_id, const std::string& object) override {
    if (refuse_claims_) return false;
    auto it = holders_.find(object);
    if (it == holders_.end() || it->second.empty()) return false;
    it->second.insert(backup_id);
    return true;
  }
  // Drops `backup_id`'s holds; the objects nobody holds any more.
  std::vector<std::string> Release(const std::string& backup_id) {
    std::vector<std::string> orphans;
    for (auto& [object, holders] : holders_) {
      if (holders.erase(backup_id) && holders.empty()) orphans.push_back(object);
    }
    return orphans;
  }
  bool refuse_claims_ = false;

 private:
  std::map<std::string, std::set<std::string>> holders_;
};

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

  absl::StatusOr<BackupSummary> Backup(const std::string& id, const std::string& base = "",
                                       BackupFileRefs* refs = nullptr) {
    BackupJob job;
    job.backup_id = id;
    job.cluster_id = "c-1";
    job.project_id = "p-1";
    job.key_record_id = "k-1";
    job.created_at = 1700000000;
    job.chunk_size = 4096;  // many chunks per file
    job.checkpoint_dir = (root_ / "clusters" / "c-1" / ("backup-checkpoint-" + id)).string();
    job.base_backup_id = base;
    job.refs = refs;
    return BackUpCluster(*store_, *escrow_, *dest_, job, nullptr);
  }

  absl::StatusOr<BackupManifest> Restore(const std::string& id, MasterKeyProvider& p) {
    return RestoreBackup(*dest_, p, id, "c-new", Target(), 1700000100, nullptr);
  }
  std::string Target() const { return (root_ / "clusters" / "c-new").string(); }
  fs::path Obj(const std::string& name) const { return root_ / "backups" / name; }
  // The chunk objects of the largest file of backup `id` (an SST, so a shared file object),
  // in order; `name` gets the file's name.
  std::vector<fs::path> BigFileChunks(const std::string& id, std::string* name = nullptr) {
    auto opened = OpenBackupManifest(Read(Obj(id + "/manifest")), id, *escrow_);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (!opened.ok()) return {};
    const auto& files = opened->manifest.files;
    size_t best = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i].chunks > files[best].chunks) best = i;
    }
    const BackupFileEntry& f = files[best];
    EXPECT_GE(f.chunks, 3u);
    EXPECT_FALSE(f.object.empty()) << f.name << " is not in a shared file object";
    if (name) *name = f.name;
    std::vector<fs::path> out;
    for (uint32_t c = 0; c < f.chunks; ++c) {
      out.push_back(Obj(f.object.empty() ? BackupChunkObject(id, best, c)
                                         : BackupFileChunkObject(f.object, c)));
    }
    return out;
  }
  // Every object file below the destination and their total size.
  std::pair<size_t, uint64_t> CountObjects() {
    std::pair<size_t, uint64_t> out{0, 0};
    for (const auto& e : fs::recursive_directory_iterator(root_ / "backups")) {
      if (!e.is_regular_file()) continue;
      out.first++;
      out.second += e.file_size();
    }
    return out;
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
  auto chunks = BigFileChunks("b-1");
  std::string bytes = Read(chunks[1]);
  bytes[bytes.size() / 2] ^= 0x20;
  Write(chunks[1], bytes);
  ExpectRefused("b-1", "failed authentication: chunk 1 of file");
}

TEST_F(ClusterBackupTest, DroppedLastChunkIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  auto chunks = BigFileChunks("b-1");
  fs::remove(chunks.back());
  ExpectRefused("b-1", "is incomplete");
}

TEST_F(ClusterBackupTest, SwappedChunksAreRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  auto chunks = BigFileChunks("b-1");
  std::string a = Read(chunks[0]), b = Read(chunks[1]);
  Write(chunks[0], b);
  Write(chunks[1], a);
  ExpectRefused("b-1", "failed authentication: chunk 0 of file");
}

TEST_F(ClusterBackupTest, ChunkFromAnotherBackupOfTheClusterIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  ASSERT_TRUE(Backup("b-2").ok());
  // Without the holders' record, b-2 reuses nothing: the same SST is in two shared objects.
  auto mine = BigFileChunks("b-1"), theirs = BigFileChunks("b-2");
  ASSERT_NE(mine[0], theirs[0]);
  fs::copy_file(theirs[0], mine[0], fs::copy_options::overwrite_existing);
  ExpectRefused("b-1", "failed authentication");
}

TEST_F(ClusterBackupTest, ManifestOfAnotherBackupIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  ASSERT_TRUE(Backup("b-2").ok());
  fs::copy_file(Obj("b-2/manifest"), Obj("b-1/manifest"), fs::copy_options::overwrite_existing);
  ExpectRefused("b-1", "belongs to backup b-2");
}

// A manifest (sealed under the right key) whose size for a file differs from what its chunks
// hold is refused, nothing left behind: a shared object's chunks bind the file's size in their
// associated data (authentication fails), a file of the backup's own is counted as it is
// written. (The files' SHA-256 is not checked again on restore: RestoreFiles says why.)
TEST_F(ClusterBackupTest, FileWhoseSizeDiffersFromTheManifestIsRefused) {
  ASSERT_TRUE(Backup("b-1").ok());
  auto original = Read(Obj("b-1/manifest"));
  auto opened = OpenBackupManifest(original, "b-1", *escrow_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  for (bool shared : {true, false}) {
    auto m = opened->manifest;
    std::string name;
    for (auto& f : m.files) {
      if (f.object.empty() == shared || f.size < 2) continue;
      uint64_t size =
          BackupChunkCount(f.size - 1, m.chunk_size) == f.chunks ? f.size - 1 : f.size + 1;
      ASSERT_EQ(BackupChunkCount(size, m.chunk_size), f.chunks);
      f.size = size;
      name = f.name;
      break;
    }
    ASSERT_FALSE(name.empty()) << "no " << (shared ? "shared" : "own") << " file to alter";
    auto resealed = SealBackupManifest(m, opened->key);
    ASSERT_TRUE(resealed.ok()) << resealed.status();
    Write(Obj("b-1/manifest"), *resealed);
    ExpectRefused("b-1", shared ? "failed authentication: chunk 0 of file " + name
                                : "failed verification: file " + name);
  }
  Write(Obj("b-1/manifest"), original);
  EXPECT_TRUE(Restore("b-1", *escrow_).ok());
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

// Incremental backups: the second backup after a few writes uploads only the new SST (and the
// small files that change every time), and restores on its own once the first is deleted.
TEST_F(ClusterBackupTest, IncrementalBackupUploadsOnlyNewFilesAndRestoresOnItsOwn) {
  MemoryRefs refs;
  // Incompressible values, so the SST (not the small files every backup writes) is most of it.
  for (int i = 0; i < 200; ++i) {
    std::string key = "random-" + std::to_string(i);
    std::string value = *RandomHex(1024);
    ASSERT_TRUE(store_->Put(key, {value, 0}).ok());
    data_[key] = value;
  }
  auto first = Backup("b-1", "", &refs);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->files_reused, 0u);
  auto [objects1, bytes1] = CountObjects();
  for (int i = 0; i < 20; ++i) {
    std::string key = "new-" + std::to_string(i);
    std::string value = "canary-new-" + std::to_string(i) + std::string(500, 'n');
    ASSERT_TRUE(store_->Put(key, {value, 0}).ok());
    data_[key] = value;
  }
  auto second = Backup("b-2", "b-1", &refs);
  ASSERT_TRUE(second.ok()) << second.status();
  auto [objects2, bytes2] = CountObjects();
  printf(
      "full backup: %zu objects, %llu bytes; incremental after 20 writes: %llu objects, "
      "%llu bytes written (%llu of %llu files, %llu plaintext bytes reused)\n",
      objects1, static_cast<unsigned long long>(bytes1),
      static_cast<unsigned long long>(second->objects_written),
      static_cast<unsigned long long>(second->bytes_written),
      static_cast<unsigned long long>(second->files_reused),
      static_cast<unsigned long long>(second->files),
      static_cast<unsigned long long>(second->bytes_reused));
  EXPECT_EQ(second->files_reused, 1u);  // the first backup's SST
  EXPECT_EQ(objects2 - objects1, second->objects_written);
  EXPECT_EQ(bytes2 - bytes1, second->bytes_written);
  EXPECT_LT(second->bytes_written * 4, bytes1) << "the unchanged SST was uploaded again";

  // The first backup deleted (its own objects, then what nobody holds): the shared SST stays.
  ASSERT_TRUE(DeleteBackupObjects(*dest_, "b-1").ok());
  std::vector<std::string> orphans = refs.Release("b-1");
  EXPECT_TRUE(orphans.empty());
  ASSERT_TRUE(DeleteBackupFileObjects(*dest_, orphans).ok());
  auto m = Restore("b-2", *escrow_);
  ASSERT_TRUE(m.ok()) << m.status();
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
  restored->reset();

  // The second deleted too: nothing is left.
  ASSERT_TRUE(DeleteBackupObjects(*dest_, "b-2").ok());
  ASSERT_TRUE(DeleteBackupFileObjects(*dest_, refs.Release("b-2")).ok());
  EXPECT_EQ(CountObjects().first, 0u);
}

TEST_F(ClusterBackupTest, TamperedSharedObjectIsRefusedByEveryBackupHoldingIt) {
  MemoryRefs refs;
  ASSERT_TRUE(Backup("b-1", "", &refs).ok());
  ASSERT_TRUE(store_->Put("one-more", {"value", 0}).ok());
  auto second = Backup("b-2", "b-1", &refs);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->files_reused, 1u);
  std::string name;
  auto chunks = BigFileChunks("b-1", &name);
  EXPECT_EQ(chunks, BigFileChunks("b-2")) << "b-2 does not reuse b-1's object for " << name;
  std::string bytes = Read(chunks[2]);
  bytes[bytes.size() / 3] ^= 0x04;
  Write(chunks[2], bytes);
  ExpectRefused("b-2", "failed authentication: chunk 2 of file " + name);
  ExpectRefused("b-1", "failed authentication: chunk 2 of file " + name);
}

TEST_F(ClusterBackupTest, ObjectThatCannotBeClaimedIsUploadedAnew) {
  MemoryRefs refs;
  ASSERT_TRUE(Backup("b-1", "", &refs).ok());
  refs.refuse_claims_ = true;  // as when b-1 is being deleted at the same moment
  auto second = Backup("b-2", "b-1", &refs);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->files_reused, 0u);
  EXPECT_NE(BigFileChunks("b-1"), BigFileChunks("b-2"));
  ASSERT_TRUE(DeleteBackupObjects(*dest_, "b-1").ok());
  ASSERT_TRUE(DeleteBackupFileObjects(*dest_, refs.Release("b-1")).ok());
  EXPECT_TRUE(Restore("b-2", *escrow_).ok());
}

}  // namespace
}  // namespace keyward
