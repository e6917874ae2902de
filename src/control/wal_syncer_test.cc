#include "control/wal_syncer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class WalSyncerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-sync-" + *RandomHex(6));
    fs::create_directories(root_);
    auto p = EscrowProvider::LoadOrCreate((root_ / "escrow.key").string());
    ASSERT_TRUE(p.ok()) << p.status();
    escrow_ = *std::move(p);
    shared_ = SharedStorageResources::New(8 << 20, 16 << 20);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::shared_ptr<ClusterStore> NewStore(const std::string& id) {
    ClusterStoreOptions o;
    o.dir = (root_ / id).string();
    o.cluster_id = id;
    auto s = ClusterStore::Create(o, *escrow_, shared_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::shared_ptr<ClusterStore>(std::move(*s)) : nullptr;
  }

  fs::path root_;
  std::unique_ptr<EscrowProvider> escrow_;
  std::shared_ptr<SharedStorageResources> shared_;
};

// Written stores are synced, idle ones skipped, a reopened cluster (a new store) synced anew and
// closed ones forgotten.
TEST_F(WalSyncerTest, SyncsWrittenStoresAndSkipsIdleOnes) {
  auto a = NewStore("c-a");
  auto b = NewStore("c-b");
  ASSERT_TRUE(a && b);
  WalSyncer::StoreList listed = {{"c-a", a}, {"c-b", b}};
  WalSyncer syncer([&] { return listed; });
  ASSERT_TRUE(a->Put("k", {"v", 0}).ok());
  ASSERT_TRUE(b->Put("k", {"v", 0}).ok());
  EXPECT_EQ(syncer.SyncOnce(), 2);
  EXPECT_EQ(syncer.SyncOnce(), 0);  // nothing written since
  ASSERT_TRUE(b->Put("k2", {"v", 0}).ok());
  EXPECT_EQ(syncer.SyncOnce(), 1);
  EXPECT_EQ(syncer.SyncOnce(), 0);
  auto b2 = NewStore("c-b2");
  ASSERT_TRUE(b2 && b2->Put("k", {"v", 0}).ok());
  listed = {{"c-b", b2}};  // same id, another store
  EXPECT_EQ(syncer.SyncOnce(), 1);
  listed.clear();
  EXPECT_EQ(syncer.SyncOnce(), 0);
}

// Started, it runs a round about every period, and Stop ends it promptly.
TEST_F(WalSyncerTest, RunsEveryPeriodUntilStopped) {
  std::atomic<int> rounds{0};
  WalSyncer syncer(
      [&] {
        ++rounds;
        return WalSyncer::StoreList();
      },
      /*period_ms=*/20);
  syncer.Start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (rounds.load() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(rounds.load(), 5);
  auto t0 = std::chrono::steady_clock::now();
  syncer.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  int after = rounds.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(rounds.load(), after);
}

}  // namespace
}  // namespace keyward
