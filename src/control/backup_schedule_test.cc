// Backup policies at the lowest level that shows them: a real control plane, metadata store,
// encrypted stores and local backup directory, the escrow key, and a test clock driving the
// scheduler — days pass in microseconds.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "backup/backup_destination.h"
#include "control/control_plane.h"
#include "control/scheduler.h"
#include "crypto/random.h"
#include "control_plane_world.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kDayMs = 24 * 3600 * 1000;

class BackupScheduleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world_.ok()) << world_.error();
    auto records = BackupRecords::Open((world_.root() / "backups.db").string());
    ASSERT_TRUE(records.ok()) << records.status();
    records_ = std::move(*records);
    auto dest = LocalDirectoryDestination::New((world_.root() / "backups").string());
    ASSERT_TRUE(dest.ok()) << dest.status();
    dest_ = std::move(*dest);
    control_->SetBackups(records_.get(), dest_.get());
    // As serve.cc does it.
    world_.UseScheduler().Every("backup-schedule", 60'000, 0,
                                [this] { control_->RunBackupSchedule(); });
    auto project = control_->DefaultProjectId();
    ASSERT_TRUE(project.ok()) << project.status();
    project_ = *project;
  }
  void TearDown() override {
    // The scheduler's jobs use the records and the destination: stop it before they go.
    if (world_.scheduler) world_.scheduler->Stop();
  }

  std::string NewCluster(const std::string& name, int retention_days) {
    auto c = control_->CreateCluster(owner_, project_,
                                     {name, "azure", "eastus", "dedicated", std::nullopt});
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return "";
    auto set =
        control_->SetBackupPolicy(owner_, c->cluster.id, {"daily", retention_days, false, ""});
    EXPECT_TRUE(set.ok()) << set.status();
    return c->cluster.id;
  }
  // Moves the clock on by `ms` in minute steps, running whatever the scheduler has due (the
  // schedule's tick and the backup jobs it starts).
  void Advance(int64_t ms) {
    for (int64_t left = ms; left > 0; left -= 60'000)
      world_.Advance(std::min<int64_t>(left, 60'000));
  }
  std::vector<BackupRecord> Backups(const std::string& cluster) {
    auto list = records_->ListForCluster(cluster, {0, 1000});
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? *list : std::vector<BackupRecord>{};
  }
  // Backup ids with objects in the backup directory.
  std::set<std::string> ObjectDirs() {
    std::set<std::string> ids;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(world_.root() / "backups", ec)) {
      std::string n = e.path().filename().string();
      if (n.rfind("b-", 0) == 0) ids.insert(n);
    }
    return ids;
  }
  // Shared object directories of `cluster` in the backup directory.
  std::set<std::string> SharedObjects(const std::string& cluster) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(world_.root() / "backups" / "shared" / cluster, ec)) {
      out.insert("shared/" + cluster + "/" + e.path().filename().string());
    }
    return out;
  }
  // A shared object of `cluster` that no backup's record names (what a crash between upload
  // and cleanup leaves), with one chunk.
  std::string PlantObject(const std::string& cluster) {
    std::string object = "shared/" + cluster + "/" + *RandomHex(16);
    fs::create_directories(world_.root() / "backups" / object);
    std::ofstream(world_.root() / "backups" / object / "00000000") << "sealed bytes";
    return object;
  }
  bool Exists(const std::string& object) { return fs::exists(world_.root() / "backups" / object); }
  int AuditCount(const std::string& action) {
    int n = 0;
    for (const auto& e : world_.Audit(project_)) n += e.action == action && e.result == "success";
    return n;
  }

  // Two minutes past midnight UTC, so each day's scheduled backup is taken at the first tick.
  ControlPlaneWorld world_{{.prefix = "bsched",
                            .test_clock = true,
                            .start_ms = 1'800'000'000'000 / kDayMs * kDayMs + 120'000}};
  std::unique_ptr<MetadataStore>& metadata_ = world_.metadata;
  std::unique_ptr<ClusterRuntime>& runtime_ = world_.runtime;
  std::unique_ptr<ControlPlane>& control_ = world_.control;
  User& owner_ = world_.owner;
  std::unique_ptr<BackupRecords> records_;
  std::unique_ptr<LocalDirectoryDestination> dest_;
  std::string project_;
};

TEST_F(BackupScheduleTest, DailyPolicyWithTwoDaysRetentionKeepsTwoBackups) {
  std::string id = NewCluster("daily", 2);
  ASSERT_FALSE(id.empty());
  Advance(60'000);  // the first tick: today's backup
  ASSERT_EQ(Backups(id).size(), 1u);
  EXPECT_EQ(Backups(id)[0].state, "completed") << Backups(id)[0].error;
  Advance(3600'000);  // later the same day: no second one
  EXPECT_EQ(Backups(id).size(), 1u);

  for (int day = 0; day < 5; ++day) Advance(kDayMs);
  std::vector<BackupRecord> kept = Backups(id);
  ASSERT_EQ(kept.size(), 2u);
  std::set<std::string> ids;
  for (const auto& b : kept) {
    EXPECT_EQ(b.state, "completed") << b.error;
    ids.insert(b.id);
  }
  // One a day, the newest today: two days, two backups.
  EXPECT_EQ(kept[0].created_at - kept[1].created_at, kDayMs / 1000);
  EXPECT_GE(kept[0].created_at, world_.now_ms() / 1000 - kDayMs / 1000);
  // The expired ones' objects are gone too, and each deletion is audited.
  EXPECT_EQ(ObjectDirs(), ids);
  EXPECT_EQ(AuditCount("backup.expire"), 4);
  EXPECT_EQ(AuditCount("backup.create"), 2 * 6);  // started + finished, six days
}

TEST_F(BackupScheduleTest, PausedClusterGetsNoScheduledBackupAndResumedOneDoes) {
  std::string id = NewCluster("paused", 7);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(control_->PauseCluster(owner_, id).ok());
  Advance(3 * kDayMs);
  EXPECT_TRUE(Backups(id).empty());
  ASSERT_TRUE(control_->ResumeCluster(owner_, id).ok());
  Advance(60'000);
  ASSERT_EQ(Backups(id).size(), 1u);
  EXPECT_EQ(Backups(id)[0].state, "completed") << Backups(id)[0].error;
}

TEST_F(BackupScheduleTest, NoPolicyNoScheduledBackupButDeletedClustersBackupsExpire) {
  auto plain = control_->CreateCluster(owner_, project_,
                                       {"nopolicy", "azure", "eastus", "dedicated", std::nullopt});
  ASSERT_TRUE(plain.ok()) << plain.status();
  std::string id = NewCluster("gone", 2);
  Advance(60'000);
  EXPECT_TRUE(Backups(plain->cluster.id).empty());
  ASSERT_EQ(Backups(id).size(), 1u);
  // Deleted, its backup stays until the retention ends, then goes.
  ASSERT_TRUE(control_->DeleteCluster(owner_, id).ok());
  Advance(kDayMs);
  EXPECT_EQ(Backups(id).size(), 1u);
  Advance(kDayMs);
  EXPECT_TRUE(Backups(id).empty());
  EXPECT_TRUE(ObjectDirs().empty());
}

TEST_F(BackupScheduleTest, DeleteWithBackupsRefusedWhileOneRunsNothingDeleted) {
  std::string id = NewCluster("busy", 7);
  Advance(60'000);
  ASSERT_EQ(Backups(id).size(), 1u);
  // A second backup started, its job not yet run: it is running.
  auto running = control_->CreateBackup(owner_, id);
  ASSERT_TRUE(running.ok()) << running.status();
  auto refused = control_->DeleteCluster(owner_, id, /*with_backups=*/true);
  ASSERT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find(running->id), std::string_view::npos);
  EXPECT_EQ((*metadata_->GetCluster(id))->state, "available");
  EXPECT_EQ(ObjectDirs().size(), 1u);
  world_.RunDue();
  auto deleted = control_->DeleteCluster(owner_, id, /*with_backups=*/true);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->backups_deleted, 2);
  EXPECT_EQ(deleted->cluster.state, "deleted");
  EXPECT_TRUE(Backups(id).empty());
  EXPECT_TRUE(ObjectDirs().empty());
}

// The sweep of leaked shared objects: one no backup holds goes once it has been unheld for the
// grace period; one a running backup has claimed, the ones completed backups hold and another
// server's (a cluster this one does not know) stay.
TEST_F(BackupScheduleTest, SweepDeletesLeakedSharedObjectsAfterTheGracePeriodOnly) {
  std::string id = NewCluster("sweep", 30);
  ASSERT_FALSE(id.empty());
  {
    auto h = runtime_->Get(id);
    ASSERT_TRUE(h);
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(h->store->Put("key-" + std::to_string(i), {std::string(500, 'v'), 0}).ok());
    }
  }
  Advance(60'000);  // today's backup: its SSTs go into shared objects it holds
  ASSERT_EQ(Backups(id).size(), 1u);
  ASSERT_EQ(Backups(id)[0].state, "completed") << Backups(id)[0].error;
  std::set<std::string> held = SharedObjects(id);
  ASSERT_FALSE(held.empty());
  std::string leaked = PlantObject(id);
  std::string claimed = PlantObject(id);
  ASSERT_TRUE(records_->Add("b-running", claimed).ok());  // a running backup's new object
  std::string foreign = PlantObject("c-elsewhere");

  Advance(2 * 3600'000);  // swept twice: seen unheld, but not for the grace period yet
  EXPECT_TRUE(Exists(leaked));
  world_.AdvanceClock(ControlPlane::kBackupSweepGraceSeconds * 1000);  // the grace period, in one step
  Advance(3600'000);
  EXPECT_FALSE(Exists(leaked)) << "a leaked object outlived the grace period";
  EXPECT_TRUE(Exists(claimed)) << "the sweep deleted an object a running backup holds";
  EXPECT_TRUE(Exists(foreign)) << "the sweep deleted another server's object";
  for (const std::string& object : held) EXPECT_TRUE(Exists(object)) << object;

  // Every backup still restores: nothing it needs was swept.
  for (const BackupRecord& b : Backups(id)) {
    ASSERT_EQ(b.state, "completed") << b.error;
    auto restored = control_->RestoreBackup(owner_, b.id, "back-" + b.id.substr(2, 6));
    EXPECT_TRUE(restored.ok()) << b.id << ": " << restored.status();
  }
  // Released (the backup finished or failed): from now on it is a leak like any other.
  ASSERT_TRUE(records_->ReleaseFileObjects("b-running").ok());
  Advance(3600'000);
  EXPECT_TRUE(Exists(claimed));
  world_.AdvanceClock(ControlPlane::kBackupSweepGraceSeconds * 1000);
  Advance(3600'000);
  EXPECT_FALSE(Exists(claimed));
}

}  // namespace
}  // namespace keyward
