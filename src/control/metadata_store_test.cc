// The metadata store keeps "no live cluster without its key record" by itself, so it holds across
// control-plane replicas too: key removal and cluster insertion each check in one transaction.
#include "control/metadata_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "control/sqlite_db.h"
#include "crypto/random.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class MetadataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-md-" + *RandomHex(6));
    fs::create_directories(root_);
    auto md = OpenSqliteMetadataStore((root_ / "metadata.db").string());
    ASSERT_TRUE(md.ok()) << md.status();
    md_ = std::move(*md);
    User owner{"u-1", "org-1", "owner", "owner", 1, false, "owner", 0};
    ASSERT_TRUE(md_->Bootstrap("org-1", "default", owner, {"hash", 0, "", "owner"}).ok());
    ASSERT_TRUE(md_->CreateProject({"p-1", "org-1", "p", true, 1}, "u-1", std::nullopt).ok());
  }
  void TearDown() override { fs::remove_all(root_); }

  EncryptionKey Key(const std::string& id, const std::string& region, const std::string& state) {
    EncryptionKey k;
    k.id = id;
    k.project_id = "p-1";
    k.provider = "azure-key-vault";
    k.region = region;
    k.state = state;
    k.key_name = "cmek-00000000";
    k.config_json = "{}";
    return k;
  }
  Cluster ClusterOn(const std::string& id, const std::string& key_id) {
    Cluster c;
    c.id = id;
    c.project_id = "p-1";
    c.name = id;
    c.cloud_provider = "azure";
    c.region = "eastus";
    c.tier = "dedicated";
    c.state = "creating";
    c.encryption_key_id = key_id;
    return c;
  }

  fs::path root_;
  std::unique_ptr<MetadataStore> md_;
};

TEST_F(MetadataStoreTest, ClustersGoOnlyUnderAnActiveKeyThatExists) {
  ASSERT_TRUE(md_->InsertKey(Key("k-p", "westus", "pending")).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(md_->InsertCluster(ClusterOn("c-1", "k-p"))));
  EXPECT_TRUE(absl::IsFailedPrecondition(md_->InsertCluster(ClusterOn("c-2", "k-gone"))));
  ASSERT_TRUE(md_->InsertKey(Key("k-a", "eastus", "active")).ok());
  EXPECT_TRUE(md_->InsertCluster(ClusterOn("c-3", "k-a")).ok());
}

TEST_F(MetadataStoreTest, AKeyInUseIsNeitherChangedNorDeleted) {
  ASSERT_TRUE(md_->InsertKey(Key("k-a", "eastus", "active")).ok());
  ASSERT_TRUE(md_->InsertCluster(ClusterOn("c-1", "k-a")).ok());
  EncryptionKey changed = Key("k-a", "eastus", "pending");
  changed.key_name = "other-11111111";
  auto users = md_->ChangeKeySettingsIfUnused(changed);
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ((*users)[0].id, "c-1");
  EXPECT_EQ((*md_->GetKey("k-a"))->key_name, "cmek-00000000");
  users = md_->DeleteKeyIfUnused("k-a");
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), 1u);
  ASSERT_TRUE(md_->TransitionCluster("c-1", {"creating"}, {"deleted", "", "", 0, 2}).ok());
  users = md_->ChangeKeySettingsIfUnused(changed);
  ASSERT_TRUE(users.ok());
  EXPECT_TRUE(users->empty());
  EXPECT_EQ((*md_->GetKey("k-a"))->key_name, "other-11111111");
  users = md_->DeleteKeyIfUnused("k-a");
  ASSERT_TRUE(users.ok());
  EXPECT_TRUE(users->empty());
  EXPECT_FALSE((*md_->GetKey("k-a")).has_value());
  EXPECT_TRUE(absl::IsNotFound(md_->DeleteKeyIfUnused("k-a").status()));
  EXPECT_TRUE(absl::IsNotFound(md_->ChangeKeySettingsIfUnused(changed).status()));
}

TEST_F(MetadataStoreTest, DeleteAndInsertRacingAgreeEveryTime) {
  for (int round = 0; round < 200; ++round) {
    std::string key = "k-" + std::to_string(round);
    std::string region = "r" + std::to_string(round);
    ASSERT_TRUE(md_->InsertKey(Key(key, region, "active")).ok());
    absl::StatusOr<std::vector<Cluster>> deleted;
    absl::Status inserted;
    std::thread a([&] { deleted = md_->DeleteKeyIfUnused(key); });
    std::thread b([&] { inserted = md_->InsertCluster(ClusterOn("c-" + key, key)); });
    a.join();
    b.join();
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    // Exactly one wins: the key went and no cluster came, or the cluster came and the key stayed.
    EXPECT_NE(inserted.ok(), deleted->empty()) << "round " << round;
    EXPECT_EQ((*md_->GetKey(key)).has_value(), inserted.ok()) << "round " << round;
  }
}

TEST_F(MetadataStoreTest, AKeyTestResultIsNotWrittenOverChangedSettings) {
  EncryptionKey k = Key("k-a", "eastus", "pending");
  ASSERT_TRUE(md_->InsertKey(k).ok());
  EncryptionKey changed = k;
  changed.config_json = R"({"key_vault_name":"kv-new"})";
  ASSERT_TRUE(md_->ChangeKeySettingsIfUnused(changed).ok());
  auto written = md_->SetKeyTestResult(k, "active", "tested", 3);
  ASSERT_TRUE(written.ok());
  EXPECT_FALSE(*written);
  EXPECT_EQ((*md_->GetKey("k-a"))->state, "pending");
  written = md_->SetKeyTestResult(changed, "active", "tested", 3);
  ASSERT_TRUE(written.ok());
  EXPECT_TRUE(*written);
}

TEST_F(MetadataStoreTest, OnlyOneOfRacingReencryptionsStarts) {
  ASSERT_TRUE(md_->InsertKey(Key("k-a", "eastus", "active")).ok());
  ASSERT_TRUE(md_->InsertCluster(ClusterOn("c-1", "k-a")).ok());
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> started{0};
    std::vector<std::thread> racers;
    for (int i = 0; i < 4; ++i) {
      racers.emplace_back([&, i] {
        auto won = md_->StartClusterReencrypt(
            "c-1", R"({"state":"running","racer":)" + std::to_string(i) + "}");
        ASSERT_TRUE(won.ok()) << won.status();
        if (*won) ++started;
      });
    }
    for (auto& t : racers) t.join();
    EXPECT_EQ(started.load(), 1) << "round " << round;
    // Finished (or never valid JSON, as an old row may hold): the next one may start.
    ASSERT_TRUE(
        md_->RecordClusterReencrypt("c-1", round % 2 ? R"({"state":"completed"})" : "not json")
            .ok());
  }
  EXPECT_FALSE(*md_->StartClusterReencrypt("no-such-cluster", R"({"state":"running"})"));
}

TEST_F(MetadataStoreTest, DurabilityIsStoredAndOlderClustersAdoptTheServerDefault) {
  ASSERT_TRUE(md_->InsertKey(Key("k-a", "eastus", "active")).ok());
  Cluster chosen = ClusterOn("c-none", "k-a");
  chosen.durability = "none";
  ASSERT_TRUE(md_->InsertCluster(chosen).ok());
  ASSERT_TRUE(md_->InsertCluster(ClusterOn("c-old", "k-a")).ok());
  EXPECT_EQ((*md_->GetCluster("c-none"))->durability, "none");
  // A schema-3 database had no column: take it away and reopen, as an upgrade would find it.
  md_.reset();
  {
    auto db = SqliteDb::Open((root_ / "metadata.db").string());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->ExecScript("ALTER TABLE clusters DROP COLUMN durability; "
                                 "ALTER TABLE clusters DROP COLUMN engine; "
                                 "ALTER TABLE idempotency_claims DROP COLUMN generation; "
                                 "ALTER TABLE clusters DROP COLUMN nodes; "
                                 // and what migration 6 added (tokens' id and kind, grants)
                                 "DROP INDEX tokens_by_id; DROP INDEX tokens_by_user; "
                                 "ALTER TABLE tokens DROP COLUMN id; "
                                 "ALTER TABLE tokens DROP COLUMN kind; DROP TABLE org_grants; "
                                 "PRAGMA user_version=3;")
                    .ok());
  }
  auto md = OpenSqliteMetadataStore((root_ / "metadata.db").string());
  ASSERT_TRUE(md.ok()) << md.status();
  md_ = std::move(*md);
  EXPECT_EQ((*md_->GetCluster("c-none"))->durability, "");
  auto adopted = md_->AdoptDurability("everysec");
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ(*adopted, 2);
  EXPECT_EQ((*md_->GetCluster("c-old"))->durability, "everysec");
  // Stored values stay; the next start's default changes nothing.
  chosen.id = chosen.name = "c-always";
  chosen.durability = "always";
  ASSERT_TRUE(md_->InsertCluster(chosen).ok());
  EXPECT_EQ(*md_->AdoptDurability("none"), 0);
  EXPECT_EQ((*md_->GetCluster("c-always"))->durability, "always");
  EXPECT_EQ((*md_->GetCluster("c-old"))->durability, "everysec");
}

// Every cluster stored before engines existed is a kv cluster; a new one keeps its engine.
TEST_F(MetadataStoreTest, EngineIsStoredAndOlderClustersAreKv) {
  ASSERT_TRUE(md_->InsertKey(Key("k-a", "eastus", "active")).ok());
  Cluster sql = ClusterOn("c-sql", "k-a");
  sql.engine = "mariadb";
  ASSERT_TRUE(md_->InsertCluster(sql).ok());
  ASSERT_TRUE(md_->InsertCluster(ClusterOn("c-old", "k-a")).ok());
  EXPECT_EQ((*md_->GetCluster("c-sql"))->engine, "mariadb");
  // A schema-6 database had no column: take it away and reopen, as an upgrade would find it.
  md_.reset();
  {
    auto db = SqliteDb::Open((root_ / "metadata.db").string());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->ExecScript("ALTER TABLE clusters DROP COLUMN engine; "
                                 "ALTER TABLE idempotency_claims DROP COLUMN generation; "
                                 "ALTER TABLE clusters DROP COLUMN nodes; "
                                 "PRAGMA user_version=6;")
                    .ok());
  }
  auto md = OpenSqliteMetadataStore((root_ / "metadata.db").string());
  ASSERT_TRUE(md.ok()) << md.status();
  md_ = std::move(*md);
  EXPECT_EQ((*md_->GetCluster("c-sql"))->engine, "kv");
  EXPECT_EQ((*md_->GetCluster("c-old"))->engine, "kv");
  sql.id = sql.name = "c-sql-2";
  ASSERT_TRUE(md_->InsertCluster(sql).ok());
  EXPECT_EQ((*md_->GetCluster("c-sql-2"))->engine, "mariadb");
}

// Every cluster stored before multi-node clusters existed has one node; a Galera one keeps 3.
TEST_F(MetadataStoreTest, NodesAreStoredAndOlderClustersHaveOne) {
  ASSERT_TRUE(md_->InsertKey(Key("k-a", "eastus", "active")).ok());
  Cluster galera = ClusterOn("c-galera", "k-a");
  galera.engine = "mariadb";
  galera.nodes = 3;
  ASSERT_TRUE(md_->InsertCluster(galera).ok());
  EXPECT_EQ((*md_->GetCluster("c-galera"))->nodes, 3);
  md_.reset();
  {
    auto db = SqliteDb::Open((root_ / "metadata.db").string());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(
        (*db)->ExecScript("ALTER TABLE clusters DROP COLUMN nodes; "
                          "ALTER TABLE idempotency_claims DROP COLUMN generation; "
                          "PRAGMA user_version=7;")
            .ok());
  }
  auto md = OpenSqliteMetadataStore((root_ / "metadata.db").string());
  ASSERT_TRUE(md.ok()) << md.status();
  md_ = std::move(*md);
  EXPECT_EQ((*md_->GetCluster("c-galera"))->nodes, 1);
  galera.id = galera.name = "c-galera-2";
  ASSERT_TRUE(md_->InsertCluster(galera).ok());
  EXPECT_EQ((*md_->GetCluster("c-galera-2"))->nodes, 3);
}

// An Idempotency-Key is claimed once: a duplicate sees it running, then the stored answer; a
// different body is told apart; a failed request's release lets a retry claim it again; a claim
// whose server died is taken over once stale.
TEST_F(MetadataStoreTest, IdempotencyKeysAreClaimedOnce) {
  using O = IdempotencyClaim::Outcome;
  auto claim = [&](const std::string& user, const std::string& hash, int64_t now) {
    auto c = md_->ClaimIdempotent(user, "key-1", "POST /api/v1/projects", hash, now, 600);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->outcome : O::kRunning;
  };
  EXPECT_EQ(claim("u-1", "h1", 100), O::kClaimed);
  EXPECT_EQ(claim("u-1", "h1", 101), O::kRunning);
  EXPECT_EQ(claim("u-1", "h2", 101), O::kDifferentBody);
  EXPECT_EQ(claim("u-2", "h1", 101), O::kClaimed);  // another caller's key
  ASSERT_TRUE(
      md_->FinishIdempotent("u-1", "key-1", "POST /api/v1/projects", 1, {201, "{\"id\":1}"}).ok());
  auto replay = md_->ClaimIdempotent("u-1", "key-1", "POST /api/v1/projects", "h1", 102, 600);
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->outcome, O::kReplay);
  EXPECT_EQ(replay->response.status, 201);
  EXPECT_EQ(replay->response.body, "{\"id\":1}");
  // Released after a failure: claimable again. Stale: taken over.
  ASSERT_TRUE(md_->ReleaseIdempotent("u-2", "key-1", "POST /api/v1/projects", 1).ok());
  EXPECT_EQ(claim("u-2", "h1", 103), O::kClaimed);
  EXPECT_EQ(claim("u-2", "h1", 103 + 601), O::kClaimed);
}

TEST_F(MetadataStoreTest, AuditFiltersMatchIdsExactlyAndCombine) {
  // What the control plane writes: actor "id (name)", key_id "id (provider name)", backups
  // naming their cluster in the message.
  const std::vector<AuditEvent> events = {
      {0, "p-1", 1000, "u-1 (alice)", "cluster.create", "c-1", "k-1 (azure-key-vault a)", "v1",
       "success", ""},
      {0, "p-1", 2000, "u-2 (bob)", "cluster.pause", "c-10", "", "", "success",
       "started by the backup policy, cluster c-10"},
      {0, "p-1", 3000, "keyward (system)", "backup.create", "b-1", "k-1 (azure-key-vault a)", "",
       "success", "started by the backup policy, cluster c-1"},
      {0, "p-1", 4000, "u-2 (bob)", "encryption_key.test", "k-1", "k-1 (azure-key-vault a)", "v1",
       "failure", "describe: not found"},
      {0, "p-1", 5000, "u-1 (alice)", "cluster.resume", "c-1", "k-10 (aws-kms b)", "", "success",
       ""},
      {0, "p-2", 6000, "u-1 (alice)", "cluster.create", "c-1", "", "", "success", ""},
  };
  for (const auto& e : events) ASSERT_TRUE(md_->AppendAudit(e).ok());
  auto actions = [&](const AuditFilter& f) {
    auto got = md_->ListAudit("p-1", f, {0, 100});
    EXPECT_TRUE(got.ok()) << got.status();
    std::vector<std::string> out;
    for (const auto& e : *got) out.push_back(e.action + "@" + std::to_string(e.at_ms));
    return out;
  };
  using V = std::vector<std::string>;
  AuditFilter f;
  f.cluster_id = "c-1";  // not c-10; its backup counts
  EXPECT_EQ(actions(f), (V{"cluster.create@1000", "backup.create@3000", "cluster.resume@5000"}));
  f = {};
  f.key_id = "k-1";  // not k-10
  EXPECT_EQ(actions(f),
            (V{"cluster.create@1000", "backup.create@3000", "encryption_key.test@4000"}));
  f = {};
  f.actor = "bob";
  EXPECT_EQ(actions(f), (V{"cluster.pause@2000", "encryption_key.test@4000"}));
  f.actor = "u-1";
  EXPECT_EQ(actions(f), (V{"cluster.create@1000", "cluster.resume@5000"}));
  f.actor = "keyward";
  EXPECT_EQ(actions(f), (V{"backup.create@3000"}));
  f.actor = "ali";  // a part of a name is not the name
  EXPECT_EQ(actions(f), V{});
  f.actor = "ice";
  EXPECT_EQ(actions(f), V{});
  f = {};
  f.action = "cluster";
  f.since_ms = 1500;
  f.until_ms = 5000;
  EXPECT_EQ(actions(f), (V{"cluster.pause@2000", "cluster.resume@5000"}));
  f.newest_first = true;
  EXPECT_EQ(actions(f), (V{"cluster.resume@5000", "cluster.pause@2000"}));
  f = {};
  f.action = "cluster.create";
  f.cluster_id = "c-1";
  f.actor = "alice";
  EXPECT_EQ(actions(f), (V{"cluster.create@1000"}));
}

}  // namespace
}  // namespace keyward
