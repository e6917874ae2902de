// Cluster engines at the control plane: `engine` is validated, stored and defaults to kv, and
// every rule of the reference (CMEK project, a key in the cluster's region, dedicated tier)
// refuses a mariadb cluster exactly as it refuses a kv one — the rules run before the engine
// matters. A real control plane and metadata store, with the fake KMS behind the KMS seam.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "control/control_plane.h"
#include "control_plane_world.h"
#include "crypto/random.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ClusterEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControlPlaneWorldOptions o;
    o.prefix = "engine";
    o.tune_runtime = [this](ClusterRuntimeOptions& ro) { TuneRuntime(ro); };
    world_ = std::make_unique<ControlPlaneWorld>(o);
    ASSERT_TRUE(world_->ok()) << world_->error();
    root_ = world_->root();
    metadata_ = world_->metadata.get();
    runtime_ = world_->runtime.get();
    control_ = world_->control.get();
    owner_ = world_->owner;
    cmek_project_ = world_->NewProject("payments", true);
    plain_project_ = *control_->DefaultProjectId();
  }
  // No mariadbd here: what a server without MariaDB installed does.
  virtual void TuneRuntime(ClusterRuntimeOptions& ro) {
    ro.mariadbd_path = ro.data_dir + "/no-such-mariadbd";
  }
  void TearDown() override { world_.reset(); }

  absl::StatusOr<ClusterCreated> Create(const std::string& project, const std::string& name,
                                        const std::string& region, const std::string& tier,
                                        std::optional<std::string> engine) {
    return control_->CreateCluster(owner_, project,
                                   {name, "azure", region, tier, std::nullopt, engine});
  }

  // Plays the customer: an Azure key in `region`, created in the fake KMS and tested.
  void ActiveKey(const std::string& region) {
    world_->ActiveAzureKey(cmek_project_, region, "kv-" + region);
  }

  std::unique_ptr<ControlPlaneWorld> world_;
  fs::path root_;
  MetadataStore* metadata_ = nullptr;
  ClusterRuntime* runtime_ = nullptr;
  ControlPlane* control_ = nullptr;
  User owner_;
  std::string cmek_project_;
  std::string plain_project_;
};

TEST_F(ClusterEngineTest, UnknownEngineIsRefusedNamingTheEngines) {
  auto c = Create(plain_project_, "pg", "eastus", "dedicated", "postgres");
  ASSERT_TRUE(absl::IsInvalidArgument(c.status())) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "kv")) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "mariadb")) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "'postgres'")) << c.status();
  // Nothing was recorded.
  EXPECT_TRUE(control_->ListClusters(owner_, plain_project_, {0, 100})->empty());
}

// nodes: 1 or 3 for mariadb, 1 for kv; anything else is refused naming the choices, and nothing
// is recorded.
TEST_F(ClusterEngineTest, NodeCountsAreCheckedPerEngine) {
  auto create = [&](const std::string& name, const char* engine, int64_t nodes) {
    return control_->CreateCluster(
        owner_, plain_project_,
        {name, "azure", "eastus", "dedicated", std::nullopt, std::string(engine), nodes});
  };
  auto two = create("sql2", "mariadb", 2);
  ASSERT_TRUE(absl::IsInvalidArgument(two.status())) << two.status();
  EXPECT_TRUE(absl::StrContains(two.status().message(), "1 (one mariadbd) or 3")) << two.status();
  EXPECT_TRUE(absl::StrContains(two.status().message(), "not 2")) << two.status();
  auto kv3 = create("kv3", "kv", 3);
  ASSERT_TRUE(absl::IsInvalidArgument(kv3.status())) << kv3.status();
  EXPECT_TRUE(absl::StrContains(kv3.status().message(), "kv clusters have 1 node, not 3"))
      << kv3.status();
  EXPECT_TRUE(control_->ListClusters(owner_, plain_project_, {0, 100})->empty());
  auto kv1 = create("kv1", "kv", 1);
  ASSERT_TRUE(kv1.ok()) << kv1.status();
  EXPECT_EQ((*metadata_->GetCluster(kv1->cluster.id))->nodes, 1);
}

TEST_F(ClusterEngineTest, DefaultEngineIsKvAndIsStored) {
  auto c = Create(plain_project_, "cache", "eastus", "dedicated", std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cluster.engine, "kv");
  EXPECT_EQ((*metadata_->GetCluster(c->cluster.id))->engine, "kv");
  auto listed = control_->ListClusters(owner_, plain_project_, {0, 100});
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].engine, "kv");
}

// The CMEK rules are the engine's business not at all: same refusal, same words.
TEST_F(ClusterEngineTest, CmekRulesRefuseMariadbExactlyAsKv) {
  ActiveKey("eastus");
  for (const auto& [region, tier] : std::vector<std::pair<std::string, std::string>>{
           {"westeurope", "dedicated"},  // no key in that region
           {"eastus", "starter"},        // CMEK projects: dedicated only
       }) {
    auto kv = Create(cmek_project_, "a-kv", region, tier, "kv");
    auto sql = Create(cmek_project_, "a-sql", region, tier, "mariadb");
    ASSERT_TRUE(absl::IsFailedPrecondition(kv.status())) << kv.status();
    ASSERT_EQ(sql.status().code(), kv.status().code()) << sql.status();
    EXPECT_EQ(sql.status().message(), kv.status().message());
  }
  auto gcp = control_->CreateCluster(
      owner_, cmek_project_, {"a-gcp", "gcp", "us-central1", "dedicated", std::nullopt, "mariadb"});
  EXPECT_TRUE(absl::IsFailedPrecondition(gcp.status())) << gcp.status();
  EXPECT_TRUE(control_->ListClusters(owner_, cmek_project_, {0, 100})->empty());
}

// Without MariaDB installed, a mariadb cluster fails to create saying what is missing and how to
// get it; nothing is left on disk and the record says failed.
TEST_F(ClusterEngineTest, MariadbWithoutMariadbdFailsCleanlyNamingTheFix) {
  ActiveKey("eastus");
  auto c = Create(cmek_project_, "orders", "eastus", "dedicated", "mariadb");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::StrContains(c.status().message(), "no-such-mariadbd")) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "mariadb-server")) << c.status();
  auto listed = control_->ListClusters(owner_, cmek_project_, {0, 100});
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].state, "failed");
  EXPECT_EQ((*listed)[0].engine, "mariadb");
  EXPECT_FALSE(fs::exists(root_ / "clusters" / (*listed)[0].id));
}

// What keyward does not do for a mariadb cluster is refused with what to do instead.
TEST_F(ClusterEngineTest, MariadbRefusesKvOnlyOperationsSayingWhatToDo) {
  auto escrow = metadata_->ListKeys(plain_project_, {0, 10});
  ASSERT_TRUE(escrow.ok() && !escrow->empty());
  Cluster c;
  c.id = c.name = "c-sql";
  c.project_id = plain_project_;
  c.cloud_provider = "azure";
  c.region = "eastus";
  c.tier = "dedicated";
  c.state = "paused";
  c.password_sha256_hex = std::string(64, '0');
  c.encryption_key_id = (*escrow)[0].id;
  c.durability = "always";
  c.engine = "mariadb";
  ASSERT_TRUE(metadata_->InsertCluster(c).ok());
  auto re = control_->Reencrypt(owner_, c.id);
  ASSERT_TRUE(absl::IsFailedPrecondition(re.status())) << re.status();
  EXPECT_TRUE(absl::StrContains(re.status().message(), "innodb_encryption_rotate_key_age"));
  auto pw = control_->ResetClusterPassword(owner_, c.id);
  ASSERT_TRUE(absl::IsFailedPrecondition(pw.status())) << pw.status();
  EXPECT_TRUE(absl::StrContains(pw.status().message(), "ALTER USER admin"));
  EXPECT_EQ((*metadata_->GetCluster(c.id))->password_sha256_hex, c.password_sha256_hex);
}

// With a real mariadbd (skipped loudly without one): a mariadbd that keeps crashing right after
// its restarts is left down by the supervisor; the storage check then makes the cluster
// inaccessible (cause storage) saying so, and its next pass reopens it once mariadbd can start.
class MariadbEngineTest : public ClusterEngineTest {
 protected:
  void SetUp() override {
    plugin_dir_ = fs::read_symlink("/proc/self/exe").parent_path().parent_path().string();
    if (const char* v = getenv("KEYWARD_MARIADB_PLUGIN_DIR"); v && *v) plugin_dir_ = v;
    if (access("/usr/sbin/mariadbd", X_OK) != 0 ||
        access((plugin_dir_ + "/keyward_key_management.so").c_str(), R_OK) != 0) {
      GTEST_SKIP() << "SKIPPED LOUDLY: needs /usr/sbin/mariadbd (mariadb-server) and "
                   << plugin_dir_ << "/keyward_key_management.so (libmariadbd-dev)";
    }
    ClusterEngineTest::SetUp();
  }
  void TuneRuntime(ClusterRuntimeOptions& ro) override {
    ro.mariadb_plugin_dir = plugin_dir_;
    ro.mariadb_max_restarts = 1;
  }
  std::string plugin_dir_;
};

TEST_F(MariadbEngineTest, ACrashLoopingMariadbdGoesInaccessibleAndIsReopened) {
  auto c = Create(plain_project_, "ledger", "eastus", "dedicated", "mariadb");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->cluster.state, "available");
  const fs::path run = root_ / "clusters" / c->cluster.id / "mariadb" / "run";
  // Every restart now dies at once: its option file is gone.
  ASSERT_TRUE(fs::remove(run / "my.cnf"));
  pid_t pid = 0;
  std::ifstream(run / "mariadbd.pid") >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 600 && runtime_->ServingError(c->cluster.id).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(runtime_->ServingError(c->cluster.id).ok()) << "the supervisor never gave up";

  control_->CheckStorage();
  Cluster down = *control_->GetCluster(owner_, c->cluster.id);
  EXPECT_EQ(down.state, "inaccessible");
  EXPECT_EQ(down.state_cause, "storage");
  EXPECT_TRUE(absl::StrContains(down.state_message, "kept crashing")) << down.state_message;
  EXPECT_FALSE(runtime_->IsOpen(c->cluster.id));

  // The next check reopens it: the option file is rendered afresh at every start.
  control_->CheckStorage();
  Cluster back = *control_->GetCluster(owner_, c->cluster.id);
  EXPECT_EQ(back.state, "available") << back.state_message;
  EXPECT_EQ(back.port, c->cluster.port);
  EXPECT_TRUE(runtime_->IsOpen(c->cluster.id));
  EXPECT_TRUE(runtime_->ServingError(c->cluster.id).ok());
}

}  // namespace
}  // namespace keyward
