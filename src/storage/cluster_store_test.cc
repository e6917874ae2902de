#include "storage/cluster_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"
#include "util/file_util.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class ClusterStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-store-" + *RandomHex(6));
    fs::create_directories(root_);
    auto p = EscrowProvider::LoadOrCreate((root_ / "escrow.key").string());
    ASSERT_TRUE(p.ok()) << p.status();
    escrow_ = *std::move(p);
    shared_ = SharedStorageResources::New(8 << 20, 16 << 20);
  }
  void TearDown() override { fs::remove_all(root_); }

  ClusterStoreOptions Options(const std::string& id = "c-1") {
    ClusterStoreOptions o;
    o.dir = (root_ / "clusters" / id).string();
    o.cluster_id = id;
    return o;
  }

  static std::string ReadAll(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Every byte of every file below the cluster dir, searched for each canary.
  int CountCanaryHits(const std::vector<std::string>& canaries) {
    int hits = 0;
    for (const auto& e : fs::recursive_directory_iterator(root_ / "clusters")) {
      if (!e.is_regular_file()) continue;
      std::string bytes = ReadAll(e.path());
      for (const auto& c : canaries) {
        if (bytes.find(c) != std::string::npos) ++hits;
      }
    }
    return hits;
  }

  fs::path root_;
  std::unique_ptr<EscrowProvider> escrow_;
  std::shared_ptr<SharedStorageResources> shared_;
};

TEST_F(ClusterStoreTest, NoCanaryReachesDiskAndAllReadBack) {
  std::vector<std::string> canaries;
  {
    auto store = ClusterStore::Create(Options(), *escrow_, shared_);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 2000; ++i) {
      canaries.push_back("canary-" + *RandomHex(12));
      ASSERT_TRUE((*store)->Put("key:" + std::to_string(i), {canaries.back(), 0}).ok());
    }
    ASSERT_TRUE((*store)->Flush().ok());
    ASSERT_TRUE((*store)->CompactAll().ok());
  }
  EXPECT_EQ(CountCanaryHits(canaries), 0);
  // Also keys: the sequential key names must not appear either.
  EXPECT_EQ(CountCanaryHits({"key:1999"}), 0);
  auto store = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 2000; ++i) {
    auto v = (*store)->Get("key:" + std::to_string(i));
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ((*v)->data, canaries[i]);
  }
}

TEST_F(ClusterStoreTest, WrongEscrowKeyIsAClearError) {
  { ASSERT_TRUE(ClusterStore::Create(Options(), *escrow_, shared_).ok()); }
  auto other = EscrowProvider::LoadOrCreate((root_ / "other.key").string());
  ASSERT_TRUE(other.ok());
  auto store = ClusterStore::Open(Options(), **other, shared_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(store.status().message().find("--escrow-key-file"), std::string::npos)
      << store.status();
}

TEST_F(ClusterStoreTest, DictionaryMovedToAnotherClusterDoesNotOpen) {
  { ASSERT_TRUE(ClusterStore::Create(Options("c-1"), *escrow_, shared_).ok()); }
  fs::create_directories(root_ / "clusters" / "c-2");
  fs::copy(root_ / "clusters" / "c-1", root_ / "clusters" / "c-2",
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  auto store = ClusterStore::Open(Options("c-2"), *escrow_, shared_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("another cluster"), std::string::npos) << store.status();
}

TEST_F(ClusterStoreTest, DamagedOrTruncatedDictionaryIsAClearError) {
  { ASSERT_TRUE(ClusterStore::Create(Options(), *escrow_, shared_).ok()); }
  fs::path dict = root_ / "clusters" / "c-1" / "keys.dict";
  std::string good = ReadAll(dict);
  auto write = [&](const std::string& bytes) { std::ofstream(dict, std::ios::binary) << bytes; };

  std::string bad = good;
  bad[3] ^= 0x40;  // magic
  write(bad);
  auto s1 = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_FALSE(s1.ok());
  EXPECT_NE(s1.status().message().find("header is damaged"), std::string::npos) << s1.status();

  bad = good;
  bad[40] ^= 0x01;  // inside the wrapped key
  write(bad);
  auto s2 = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(s2.status().message().find("checksum"), std::string::npos) << s2.status();

  write(good.substr(0, good.size() / 2));
  auto s3 = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.status().code(), absl::StatusCode::kDataLoss) << s3.status();

  write(good.substr(0, 10));
  auto s4 = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_FALSE(s4.ok());
  EXPECT_NE(s4.status().message().find("truncated"), std::string::npos) << s4.status();

  write(good);
  EXPECT_TRUE(ClusterStore::Open(Options(), *escrow_, shared_).ok());
}

TEST_F(ClusterStoreTest, FlippedByteInSstIsCorruptionNeverData) {
  std::string value(100, 'v');
  {
    auto store = ClusterStore::Create(Options(), *escrow_, shared_);
    ASSERT_TRUE(store.ok());
    for (int i = 0; i < 500; ++i) {
      ASSERT_TRUE((*store)->Put("k" + std::to_string(i), {value, 0}).ok());
    }
    ASSERT_TRUE((*store)->Flush().ok());
  }
  fs::path sst;
  for (const auto& e : fs::directory_iterator(root_ / "clusters" / "c-1")) {
    if (e.path().extension() == ".sst") sst = e.path();
  }
  ASSERT_FALSE(sst.empty());
  {
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096 + 100);
    char c;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(4096 + 100);
    f.write(&c, 1);
  }
  auto store = ClusterStore::Open(Options(), *escrow_, shared_);
  if (!store.ok()) {
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
    return;
  }
  int errors = 0;
  for (int i = 0; i < 500; ++i) {
    auto v = (*store)->Get("k" + std::to_string(i));
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss) << v.status();
      ++errors;
    } else if (v->has_value()) {
      EXPECT_EQ((*v)->data, value);  // never wrong data
    }
  }
  EXPECT_GT(errors, 0);
}

TEST_F(ClusterStoreTest, FileCutInsideHeaderStillOpens) {
  { ASSERT_TRUE(ClusterStore::Create(Options(), *escrow_, shared_).ok()); }
  fs::path wal = root_ / "clusters" / "c-1" / "999999.log";
  std::ofstream(wal, std::ios::binary) << std::string(100, 'K');
  auto store = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("a", {"b", 0}).ok());
}

TEST_F(ClusterStoreTest, ExpiredValuesReadAsAbsent) {
  int64_t now = 1'000'000;
  auto opts = Options();
  opts.now_ms = [&] { return now; };
  auto store = ClusterStore::Create(opts, *escrow_, shared_);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Put("t", {"x", now + 10}).ok());
  EXPECT_TRUE((*(*store)->Get("t")).has_value());
  now += 11;
  EXPECT_FALSE((*(*store)->Get("t")).has_value());
  EXPECT_EQ(*(*store)->CountLiveKeys(), 0u);
}

TEST_F(ClusterStoreTest, DataKeyRotatesForNewFilesAndOldFilesStillRead) {
  int64_t now = 1'700'000'000'000;
  auto opts = Options();
  opts.now_ms = [&] { return now; };
  opts.data_key_rotation_seconds = 3600;
  {
    auto store = ClusterStore::Create(opts, *escrow_, shared_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Put("old", {"1", 0}).ok());
    ASSERT_TRUE((*store)->Flush().ok());
  }
  now += 3601 * 1000;
  auto store = ClusterStore::Open(opts, *escrow_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->dictionary().size(), 2u);
  EXPECT_EQ((*store)->dictionary().Current()->id, 2u);
  ASSERT_TRUE((*store)->Put("new", {"2", 0}).ok());
  ASSERT_TRUE((*store)->Flush().ok());
  EXPECT_EQ((*(*store)->Get("old"))->data, "1");
  EXPECT_EQ((*(*store)->Get("new"))->data, "2");
}

TEST_F(ClusterStoreTest, RewrapUnderNewMasterKeyKeepsData) {
  auto other = EscrowProvider::LoadOrCreate((root_ / "other.key").string());
  ASSERT_TRUE(other.ok());
  {
    auto store = ClusterStore::Create(Options(), *escrow_, shared_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Put("a", {"b", 0}).ok());
    ASSERT_TRUE((*store)->mutable_dictionary().Rewrap(**other).ok());
  }
  EXPECT_FALSE(ClusterStore::Open(Options(), *escrow_, shared_).ok());
  auto store = ClusterStore::Open(Options(), **other, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*(*store)->Get("a"))->data, "b");
}

TEST(EscrowProvider, RefusesKeyFileReadableByOthers) {
  fs::path p = fs::temp_directory_path() / ("kw-escrow-" + *RandomHex(6));
  ASSERT_TRUE(EscrowProvider::LoadOrCreate(p.string()).ok());
  struct stat st {};
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  chmod(p.c_str(), 0644);
  auto again = EscrowProvider::Load(p.string());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("chmod 600"), std::string::npos);
  fs::remove(p);
}

}  // namespace
}  // namespace keyward
