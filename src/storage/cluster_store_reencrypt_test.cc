#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "crypto/random.h"
#include "storage/cluster_store.h"
#include "storage/encryption_provider.h"
#include "storage/test_providers.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class ReencryptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-reenc-" + *RandomHex(6));
    fs::create_directories(root_);
    shared_ = SharedStorageResources::New(8 << 20, 16 << 20);
    opts_.dir = (root_ / "c-1").string();
    opts_.cluster_id = "c-1";
  }
  void TearDown() override { fs::remove_all(root_); }

  // Reads every file's header straight from disk, without the store: file name → data-key id
  // for encrypted files; unencrypted files other than keys.dict and LOCK are reported as 0.
  std::map<std::string, uint32_t> RawHeaderIds() {
    std::map<std::string, uint32_t> out;
    for (const auto& e : fs::directory_iterator(opts_.dir)) {
      std::string name = e.path().filename().string();
      if (name == KeyDictionary::kFileName || name == "LOCK" || e.file_size() == 0) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::string header(kFileHeaderSize, '\0');
      in.read(header.data(), header.size());
      header.resize(static_cast<size_t>(in.gcount()));
      auto h = ParseFileHeader(header);
      out[name] = h.ok() ? h->data_key_id : 0;
    }
    return out;
  }

  static std::string Value(int i) { return "value-" + std::to_string(i) + std::string(90, 'v'); }

  fs::path root_;
  ClusterStoreOptions opts_;
  TestProvider provider_{"key-a"};
  std::shared_ptr<SharedStorageResources> shared_;
};

TEST_F(ReencryptTest, EveryFileEndsUnderTheNewKeyWhileWritesContinue) {
  auto store = ClusterStore::Create(opts_, provider_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  ClusterStore& s = **store;
  int n = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 3000; ++i, ++n)
      ASSERT_TRUE(s.Put("k" + std::to_string(n), {Value(n), 0}).ok());
    ASSERT_TRUE(s.Flush().ok());
    ASSERT_TRUE(s.mutable_dictionary().AddDataKey(2'000'000'000 + round).ok());
  }
  for (int i = 0; i < 500; ++i, ++n)
    ASSERT_TRUE(s.Put("k" + std::to_string(n), {Value(n), 0}).ok());
  auto before = s.DataKeyIdsInUse();
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_GE(before->size(), 3u) << "the test needs files under several keys";

  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      if (!s.Put("w" + std::to_string(i), {Value(i), 0}).ok()) return;
      written = i + 1;
    }
  });
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  std::mutex calls_mu;
  absl::Status st = s.Reencrypt([&](uint64_t done, uint64_t total) {
    std::lock_guard<std::mutex> lock(calls_mu);
    calls.emplace_back(done, total);
  });
  stop = true;
  writer.join();
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_GT(written.load(), 0);

  uint32_t newest = s.dictionary().Current()->id;
  EXPECT_EQ(newest, 5u);
  auto after = s.DataKeyIdsInUse();
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->begin()->first, newest);
  for (const auto& [name, id] : RawHeaderIds()) EXPECT_EQ(id, newest) << name;

  ASSERT_GE(calls.size(), 2u);
  uint64_t total = calls.front().second;
  EXPECT_GT(total, 0u);
  EXPECT_EQ(calls.back(), std::make_pair(total, total));
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_GE(calls[i].first, calls[i - 1].first);

  auto check = [&](ClusterStore& c) {
    for (int i = 0; i < n; ++i) {
      auto v = c.Get("k" + std::to_string(i));
      ASSERT_TRUE(v.ok() && v->has_value()) << i;
      ASSERT_EQ((*v)->data, Value(i));
    }
    for (int i = 0; i < written; ++i) {
      auto v = c.Get("w" + std::to_string(i));
      ASSERT_TRUE(v.ok() && v->has_value()) << "concurrent write " << i << " lost";
      ASSERT_EQ((*v)->data, Value(i));
    }
  };
  check(s);
  store->reset();
  auto reopened = ClusterStore::Open(opts_, provider_, shared_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  check(**reopened);
}

// An idle store: the memtable is empty and the current WAL holds nothing, which RocksDB would
// otherwise keep as it is.
TEST_F(ReencryptTest, IdleStoreWithEmptyWalIsRewrittenToo) {
  auto store = ClusterStore::Create(opts_, provider_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("a", {"b", 0}).ok());
  ASSERT_TRUE((*store)->Flush().ok());
  uint64_t last_total = 0;
  ASSERT_TRUE((*store)->Reencrypt([&](uint64_t, uint64_t t) { last_total = t; }).ok());
  EXPECT_GE(last_total, 5u);  // WAL, SST, MANIFEST, CURRENT, OPTIONS, IDENTITY
  uint32_t newest = (*store)->dictionary().Current()->id;
  for (const auto& [name, id] : RawHeaderIds()) EXPECT_EQ(id, newest) << name;
  // Twice in a row works (nothing special about the first key).
  absl::Status again = (*store)->Reencrypt(nullptr);
  ASSERT_TRUE(again.ok()) << again;
  newest = (*store)->dictionary().Current()->id;
  EXPECT_EQ(newest, 3u);
  for (const auto& [name, id] : RawHeaderIds()) EXPECT_EQ(id, newest) << name;
  EXPECT_EQ((*(*store)->Get("a"))->data, "b");
}

TEST_F(ReencryptTest, StoreReadsEverythingAfterDictionaryKeyRotation) {
  TestProvider other("key-b");
  {
    auto store = ClusterStore::Create(opts_, provider_, shared_);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 1000; ++i)
      ASSERT_TRUE((*store)->Put("k" + std::to_string(i), {Value(i), 0}).ok());
    ASSERT_TRUE((*store)->Flush().ok());
    SecretBytes old_key = (*store)->dictionary().DictionaryKeyForTest();
    ASSERT_TRUE((*store)->mutable_dictionary().RotateDictionaryKey(other).ok());
    FixedKeyProvider old_only(std::move(old_key));
    EXPECT_FALSE(KeyDictionary::Open(opts_.dir + "/keys.dict", "c-1", old_only).ok());
    for (int i = 1000; i < 1100; ++i)
      ASSERT_TRUE((*store)->Put("k" + std::to_string(i), {Value(i), 0}).ok());
  }
  EXPECT_FALSE(ClusterStore::Open(opts_, provider_, shared_).ok());
  auto store = ClusterStore::Open(opts_, other, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 1100; ++i) {
    auto v = (*store)->Get("k" + std::to_string(i));
    ASSERT_TRUE(v.ok() && v->has_value()) << i;
    EXPECT_EQ((*v)->data, Value(i));
  }
}

}  // namespace
}  // namespace keyward
