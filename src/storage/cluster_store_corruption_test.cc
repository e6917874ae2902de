// Damaged files never pass silently: a WAL damaged in the middle fails the open (DataLoss) and
// Repair drops exactly what follows the damage, saying how much; a torn tail opens with
// everything before it; a compaction that meets a damaged SST stops writes (WritesStoppedBy)
// while reads of undamaged data go on.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"
#include "storage/cluster_store.h"
#include "storage/encryption_provider.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class ClusterStoreCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-corrupt-" + *RandomHex(6));
    fs::create_directories(root_);
    auto p = EscrowProvider::LoadOrCreate((root_ / "escrow.key").string());
    ASSERT_TRUE(p.ok()) << p.status();
    escrow_ = *std::move(p);
    shared_ = SharedStorageResources::New(8 << 20, 16 << 20);
  }
  void TearDown() override { fs::remove_all(root_); }

  ClusterStoreOptions Options() {
    ClusterStoreOptions o;
    o.dir = (root_ / "c-1").string();
    o.cluster_id = "c-1";
    return o;
  }
  std::vector<fs::path> Files(const std::string& suffix) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(root_ / "c-1")) {
      std::string n = e.path().filename().string();
      if (n.size() >= suffix.size() && n.substr(n.size() - suffix.size()) == suffix &&
          e.file_size() > kFileHeaderSize) {
        out.push_back(e.path());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static void FlipByte(const fs::path& p, uint64_t offset) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
  }
  // 800 writes of ~100 bytes into the WAL only (no flush).
  void Write800() {
    auto store = ClusterStore::Create(Options(), *escrow_, shared_);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 800; ++i) {
      ASSERT_TRUE((*store)->Put("key:" + std::to_string(i), {std::string(100, 'v'), 0}).ok());
    }
  }
  int CountPresent(ClusterStore& s) {
    int n = 0;
    for (int i = 0; i < 800; ++i) {
      auto v = s.Get("key:" + std::to_string(i));
      EXPECT_TRUE(v.ok()) << v.status();
      if (v.ok() && v->has_value()) ++n;
    }
    return n;
  }

  fs::path root_;
  std::unique_ptr<EscrowProvider> escrow_;
  std::shared_ptr<SharedStorageResources> shared_;
};

TEST_F(ClusterStoreCorruptionTest, MidWalFlipFailsOpenAndRepairSaysWhatItDropped) {
  Write800();
  auto wals = Files(".log");
  ASSERT_EQ(wals.size(), 1u);
  uint64_t size = fs::file_size(wals[0]);
  FlipByte(wals[0], kFileHeaderSize + (size - kFileHeaderSize) / 2);

  auto opened = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();

  auto report = ClusterStore::Repair(Options(), *escrow_, shared_);
  ASSERT_TRUE(report.ok()) << report.status();
  fprintf(stderr, "repair: %s\n", report->Summary().c_str());
  EXPECT_EQ(report->method, "point-in-time WAL recovery");
  EXPECT_TRUE(report->exact);
  EXPECT_GT(report->writes_dropped, 0u);
  EXPECT_GT(report->bytes_dropped, 0u);

  auto store = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  int present = CountPresent(**store);
  // Keys were written in order, one per sequence number: what is missing is what was reported.
  EXPECT_EQ(800 - present, static_cast<int>(report->writes_dropped));
  EXPECT_EQ(report->last_sequence_kept, static_cast<uint64_t>(present));
  EXPECT_EQ(report->last_sequence_dropped, 800u);
  for (int i = 0; i < present; ++i) {
    auto v = (*store)->Get("key:" + std::to_string(i));
    ASSERT_TRUE(v.ok() && v->has_value()) << i;
  }
  EXPECT_TRUE((*store)->Put("after", {"x", 0}).ok());
}

TEST_F(ClusterStoreCorruptionTest, TornTailOpensWithEverythingBefore) {
  Write800();
  auto wals = Files(".log");
  ASSERT_EQ(wals.size(), 1u);
  uint64_t size = fs::file_size(wals[0]);
  fs::resize_file(wals[0], size - 50);  // inside the last record
  auto store = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(CountPresent(**store), 799);
}

TEST_F(ClusterStoreCorruptionTest, CompactionOverDamagedSstStopsWritesKeepsReads) {
  {
    auto store = ClusterStore::Create(Options(), *escrow_, shared_);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 400; ++i) {
      ASSERT_TRUE((*store)->Put("a:" + std::to_string(i), {*RandomHex(100), 0}).ok());
    }
    ASSERT_TRUE((*store)->Flush().ok());
    for (int i = 0; i < 400; ++i) {
      ASSERT_TRUE((*store)->Put("b:" + std::to_string(i), {*RandomHex(100), 0}).ok());
    }
    ASSERT_TRUE((*store)->Flush().ok());
  }
  auto ssts = Files(".sst");
  ASSERT_EQ(ssts.size(), 2u);
  // A data block in the middle of the second file (the "b:" keys).
  FlipByte(ssts[1], kFileHeaderSize + (fs::file_size(ssts[1]) - kFileHeaderSize) / 3);
  auto store = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->WritesStoppedBy().ok());
  EXPECT_FALSE((*store)->CompactAll().ok());
  absl::Status stopped = (*store)->WritesStoppedBy();
  EXPECT_FALSE(stopped.ok());
  fprintf(stderr, "stopped: %s\n", std::string(stopped.message()).c_str());
  auto put = (*store)->Put("c", {"x", 0});
  EXPECT_EQ(put.code(), absl::StatusCode::kUnavailable) << put;
  EXPECT_NE(put.message().find("degraded"), std::string::npos) << put;
  for (int i = 0; i < 400; ++i) {
    auto a = (*store)->Get("a:" + std::to_string(i));
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(a->has_value());
  }
  int damaged = 0;
  for (int i = 0; i < 400; ++i) {
    auto b = (*store)->Get("b:" + std::to_string(i));
    if (!b.ok()) {
      EXPECT_EQ(b.status().code(), absl::StatusCode::kDataLoss);
      ++damaged;
    }
  }
  EXPECT_GT(damaged, 0);  // reads of the damaged block fail loudly, never return wrong data
  store->reset();

  // Repair: the damaged table is set aside with its entries counted; the rest is intact.
  auto report = ClusterStore::Repair(Options(), *escrow_, shared_);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->method, "RepairDB");
  ASSERT_EQ(report->files_set_aside.size(), 1u) << report->Summary();
  EXPECT_EQ(report->files_set_aside[0], ssts[1].filename().string());
  EXPECT_EQ(report->entries_set_aside, 400u);
  EXPECT_NE(report->Summary().find("400 entries"), std::string::npos) << report->Summary();
  auto repaired = ClusterStore::Open(Options(), *escrow_, shared_);
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  for (int i = 0; i < 400; ++i) {
    auto a = (*repaired)->Get("a:" + std::to_string(i));
    ASSERT_TRUE(a.ok() && a->has_value()) << i;
    auto b = (*repaired)->Get("b:" + std::to_string(i));
    ASSERT_TRUE(b.ok() && !b->has_value()) << i;
  }
  EXPECT_TRUE((*repaired)->Put("c", {"x", 0}).ok());
}

TEST_F(ClusterStoreCorruptionTest, RepairRefusesADamagedDictionary) {
  Write800();
  FlipByte(root_ / "c-1" / "keys.dict", 60);
  auto opened = ClusterStore::Open(Options(), *escrow_, shared_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  auto report = ClusterStore::Repair(Options(), *escrow_, shared_);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(report.status().message().find("restore keys.dict from a backup"), std::string::npos)
      << report.status();
}

TEST_F(ClusterStoreCorruptionTest, CleanStoreNeedsNoRepair) {
  Write800();
  auto report = ClusterStore::Repair(Options(), *escrow_, shared_);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->method, "none needed");
  EXPECT_EQ(report->last_sequence_kept, 800u);
}

}  // namespace
}  // namespace keyward
