#include "control/backup_records.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "crypto/random.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class BackupRecordsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kw-backups-" + *RandomHex(6));
    fs::create_directories(dir_);
    auto r = BackupRecords::Open((dir_ / "metadata.db").string());
    ASSERT_TRUE(r.ok()) << r.status();
    records_ = *std::move(r);
  }
  void TearDown() override {
    records_.reset();
    fs::remove_all(dir_);
  }
  static BackupRecord Running(const std::string& id, const std::string& cluster, int64_t at) {
    BackupRecord b;
    b.id = id;
    b.cluster_id = cluster;
    b.project_id = "p-1";
    b.key_record_id = "k-1";
    b.destination = "local:/x";
    b.created_at = at;
    return b;
  }
  fs::path dir_;
  std::unique_ptr<BackupRecords> records_;
};

TEST_F(BackupRecordsTest, OneRunningBackupPerClusterAndFinishIsCompareAndSet) {
  EXPECT_TRUE(*records_->InsertRunning(Running("b-1", "c-1", 10)));
  EXPECT_FALSE(*records_->InsertRunning(Running("b-2", "c-1", 11)));  // c-1 has one running
  EXPECT_TRUE(*records_->InsertRunning(Running("b-3", "c-2", 12)));
  EXPECT_FALSE(*records_->DeleteIfNotRunning("b-1"));

  BackupRecord done = Running("b-1", "c-1", 10);
  done.state = "completed";
  done.bytes = 42;
  done.key_version = "v1";
  EXPECT_TRUE(*records_->Finish(done));
  done.state = "failed";
  EXPECT_FALSE(*records_->Finish(done));  // not running any more: the first finish stands
  auto got = records_->Get("b-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->state, "completed");
  EXPECT_EQ((*got)->bytes, 42u);
  EXPECT_EQ((*got)->key_version, "v1");

  EXPECT_TRUE(*records_->InsertRunning(Running("b-4", "c-1", 13)));
  auto failed = records_->FailAllRunning("interrupted", 99);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->size(), 2u);  // b-3 and b-4
  EXPECT_EQ((*records_->Get("b-4"))->state, "failed");
  EXPECT_EQ((*records_->Get("b-4"))->error, "interrupted");
  BackupRecord late = Running("b-4", "c-1", 13);
  late.state = "completed";
  EXPECT_FALSE(*records_->Finish(late));  // a restart's "failed" is final

  auto list = records_->ListForCluster("c-1", {0, 10});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "b-4");  // newest first
  EXPECT_TRUE(*records_->DeleteIfNotRunning("b-1"));
  EXPECT_FALSE(records_->Get("b-1")->has_value());
}

// Shared file objects (incremental backups): an object is deleted only once no backup holds it,
// and a backup can claim an object only while another backup still holds it.
TEST_F(BackupRecordsTest, SharedObjectsAreReleasedOnlyWhenNoBackupHoldsThem) {
  ASSERT_TRUE(records_->Add("b-1", "shared/c-1/a").ok());
  ASSERT_TRUE(records_->Add("b-1", "shared/c-1/b").ok());
  EXPECT_TRUE(*records_->Claim("b-2", "shared/c-1/a"));
  EXPECT_FALSE(*records_->Claim("b-2", "shared/c-1/never"));
  ASSERT_TRUE(records_->Add("b-2", "shared/c-1/c").ok());
  // b-1 goes: only the object b-2 does not hold is released.
  EXPECT_EQ(*records_->ReleaseFileObjects("b-1"), std::vector<std::string>{"shared/c-1/b"});
  // Released means nobody can claim it any more (a backup starting now uploads anew).
  EXPECT_FALSE(*records_->Claim("b-3", "shared/c-1/b"));
  EXPECT_TRUE(*records_->Claim("b-3", "shared/c-1/a"));
  EXPECT_TRUE(records_->ReleaseFileObjects("b-2")->size() == 1);  // c; a is b-3's still
  EXPECT_EQ(*records_->ReleaseFileObjects("b-3"), std::vector<std::string>{"shared/c-1/a"});
  EXPECT_TRUE(records_->ReleaseFileObjects("b-3")->empty());
}

}  // namespace
}  // namespace keyward
