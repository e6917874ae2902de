// Key records a customer can fix: change and removal of encryption-key records, the rule that a
// record in use stays as it is, region names checked against the cloud's list, and refusals for
// lack of a role audited — at the lowest level that shows them: a real control plane, metadata
// store and encrypted stores, with the fake KMS behind the KMS seam.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <latch>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "control_plane_world.h"
#include "crypto/random.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class KeyRecordsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world_.ok()) << world_.error();
    project_ = world_.NewProject("payments", true);
  }

  EncryptionKey NewKey(const std::string& region, const std::string& vault) {
    KeyRequest req{"azure-key-vault", region,
                   json{{"key_vault_name", vault}, {"key_name_prefix", "cmek"}}, "azure"};
    auto key = control_->CreateKey(owner_, project_, req);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : EncryptionKey{};
  }
  // Plays the customer: creates the key in the fake KMS, grants access, tests it.
  EncryptionKey ActiveKey(const std::string& region) {
    return world_.ActiveAzureKey(project_, region, "kv-" + region);
  }
  absl::StatusOr<ClusterCreated> NewCluster(const std::string& name, const std::string& region) {
    return control_->CreateCluster(owner_, project_,
                                   {name, "azure", region, "dedicated", std::nullopt});
  }
  User Member(const std::string& name, const std::string& role) {
    auto m = control_->AddMember(owner_, project_, name, role, 0);
    EXPECT_TRUE(m.ok()) << m.status();
    tokens_.push_back(m->second);
    return *control_->Authenticate(m->second);
  }
  std::vector<AuditEvent> AuditLog() { return world_.Audit(project_); }

  ControlPlaneWorld world_{{.prefix = "keyrec"}};
  json& kms_state_ = world_.kms_state();
  std::unique_ptr<MetadataStore>& metadata_ = world_.metadata;
  std::unique_ptr<ClusterRuntime>& runtime_ = world_.runtime;
  std::unique_ptr<ControlPlane>& control_ = world_.control;
  User& owner_ = world_.owner;
  std::string project_;
  std::vector<std::string> tokens_;
};

TEST_F(KeyRecordsTest, ChangeWhileAClusterUsesTheKeyIsRefusedNamingTheCluster) {
  EncryptionKey key = ActiveKey("eastus");
  auto c = NewCluster("orders", "eastus");
  ASSERT_TRUE(c.ok()) << c.status();
  auto patched = control_->UpdateKey(owner_, project_, key.id,
                                     {"", "", json{{"key_vault_name", "kv-other"}}, "azure"});
  ASSERT_TRUE(absl::IsFailedPrecondition(patched.status())) << patched.status();
  EXPECT_TRUE(absl::StrContains(patched.status().message(), c->cluster.id))
      << patched.status().message();
  EXPECT_TRUE(absl::StrContains(patched.status().message(), "orders"))
      << patched.status().message();
  EncryptionKey stored = **metadata_->GetKey(key.id);
  EXPECT_EQ(stored.state, "active");
  EXPECT_EQ(stored.config_json, key.config_json);
}

TEST_F(KeyRecordsTest, ATestRecordsTheCheckTimeAndTheKeyVersion) {
  EncryptionKey key = NewKey("northeurope", "kv-ne");
  auto failed = control_->TestKey(owner_, project_, key.id);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EncryptionKey stored = **metadata_->GetKey(key.id);
  EXPECT_GT(stored.last_check_at, 0);
  EXPECT_FALSE(stored.last_check_error.empty());
  EXPECT_EQ(stored.current_version, "");

  EncryptionKey active = ActiveKey("westeurope");
  stored = **metadata_->GetKey(active.id);
  EXPECT_EQ(stored.state, "active");
  EXPECT_GT(stored.last_check_at, 0);
  EXPECT_EQ(stored.last_check_error, "");
  EXPECT_EQ(stored.current_version, "v1");
  EXPECT_EQ(active.current_version, "v1");
}

TEST_F(KeyRecordsTest, ChangeOfAFreeKeyMakesItPendingWithANewSuffix) {
  EncryptionKey key = NewKey("westus", "kv-typo");
  // Its test fails (nothing in the KMS): the record is failed, and stayed so before PATCH existed.
  auto failed = control_->TestKey(owner_, project_, key.id);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->key.state, "failed");

  auto vault = control_->UpdateKey(owner_, project_, key.id,
                                   {"", "", json{{"key_vault_name", "kv-right"}}, "azure"});
  ASSERT_TRUE(vault.ok()) << vault.status();
  EXPECT_EQ(vault->state, "pending");
  EXPECT_TRUE(absl::StrContains(vault->status_message, "test it again")) << vault->status_message;
  EXPECT_EQ(vault->key_name, key.key_name) << "same prefix, same name";

  auto prefix = control_->UpdateKey(owner_, project_, key.id,
                                    {"", "westus", json{{"key_name_prefix", "orders"}}, "azure"});
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_EQ(prefix->key_name.rfind("orders-", 0), 0u) << prefix->key_name;
  EncryptionKey stored = **metadata_->GetKey(key.id);
  EXPECT_EQ(stored.key_name, prefix->key_name);
  EXPECT_EQ(json::parse(stored.config_json)["key_vault_name"], "kv-right");
  EXPECT_EQ(stored.state, "pending");

  // Set up under the new name, the same record becomes active and takes clusters.
  kms_state_["keys"][stored.key_name] = {{"region", "westus"},
                                         {"granted", true},
                                         {"purge_protection", true},
                                         {"secret", *RandomHex(32)}};
  world_.WriteKmsState();
  auto tested = control_->TestKey(owner_, project_, key.id);
  ASSERT_TRUE(tested.ok());
  EXPECT_EQ(tested->key.state, "active") << tested->key.status_message;
  EXPECT_TRUE(NewCluster("west", "westus").ok());
}

TEST_F(KeyRecordsTest, RegionAndProviderCannotChange) {
  EncryptionKey key = NewKey("westus", "kv-west");
  auto region = control_->UpdateKey(owner_, project_, key.id,
                                    {"", "eastus", json{{"key_vault_name", "kv-east"}}, "azure"});
  ASSERT_TRUE(absl::IsInvalidArgument(region.status()));
  EXPECT_TRUE(
      absl::StrContains(region.status().message(), "cannot change; create a new key record"))
      << region.status().message();
  auto provider = control_->UpdateKey(
      owner_, project_, key.id,
      {"aws-kms", "", json{{"key_arn", "arn:aws:kms:westus:111122223333:key/ab"}}, "aws"});
  ASSERT_TRUE(absl::IsInvalidArgument(provider.status()));
  EXPECT_TRUE(absl::StrContains(provider.status().message(), "provider of key record"))
      << provider.status().message();
  auto bad = control_->UpdateKey(owner_, project_, key.id,
                                 {"", "", json{{"key_name_prefix", "../x"}}, "azure"});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_EQ((*metadata_->GetKey(key.id))->key_name, key.key_name);
}

TEST_F(KeyRecordsTest, DeleteWhileAPausedClusterUsesTheKeyIsRefused) {
  EncryptionKey key = ActiveKey("eastus");
  auto c = NewCluster("orders", "eastus");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(control_->PauseCluster(owner_, c->cluster.id).ok());
  auto refused = control_->DeleteKey(owner_, project_, key.id);
  ASSERT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), c->cluster.id + ", paused"))
      << refused.status().message();
  EXPECT_TRUE((*metadata_->GetKey(key.id)).has_value());

  // Once the cluster is deleted the record can go, and the region can get a new one.
  ASSERT_TRUE(control_->DeleteCluster(owner_, c->cluster.id).ok());
  auto removed = control_->DeleteKey(owner_, project_, key.id);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->id, key.id);
  EXPECT_FALSE((*metadata_->GetKey(key.id)).has_value());
  EXPECT_TRUE(absl::IsNotFound(control_->GetKey(owner_, project_, key.id).status()));
  EXPECT_TRUE(absl::IsNotFound(control_->DeleteKey(owner_, project_, key.id).status()));
  EncryptionKey again = NewKey("eastus", "kv-new");
  EXPECT_NE(again.id, key.id);
  // The deleted cluster still names the key it was under.
  EXPECT_EQ((*metadata_->GetCluster(c->cluster.id))->encryption_key_id, key.id);

  auto events = AuditLog();
  bool audited = false;
  for (const auto& e : events) {
    audited |= e.action == "encryption_key.delete" && e.result == "success" && e.target == key.id;
  }
  EXPECT_TRUE(audited);
}

TEST_F(KeyRecordsTest, TheEscrowKeyOfAProjectWithoutCmekStays) {
  auto plain = control_->CreateProject(owner_, "plain", false);
  ASSERT_TRUE(plain.ok());
  auto keys = control_->ListKeys(owner_, plain->id, {0, 10});
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  const std::string escrow = (*keys)[0].id;
  auto patched = control_->UpdateKey(owner_, plain->id, escrow,
                                     {"", "", json{{"key_vault_name", "kv-x"}}, "azure"});
  ASSERT_TRUE(absl::IsFailedPrecondition(patched.status()));
  EXPECT_TRUE(absl::StrContains(patched.status().message(), "escrow key"))
      << patched.status().message();
  EXPECT_TRUE(absl::IsFailedPrecondition(control_->DeleteKey(owner_, plain->id, escrow).status()));
}

// DELETE of a key against cluster creations on it, all at once: whichever wins, no cluster that
// is not deleted is ever left without its key record.
TEST_F(KeyRecordsTest, DeleteRacingClusterCreationsNeverLeavesAClusterWithoutItsKey) {
  EncryptionKey key = ActiveKey("eastus");
  constexpr int kThreads = 20;
  std::latch start(kThreads);
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      if (i % 2 == 0) {
        results[i] = control_->DeleteKey(owner_, project_, key.id).status();
      } else {
        results[i] = NewCluster("race-" + std::to_string(i), "eastus").status();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto clusters = metadata_->ListClusters(project_, {0, 1000});
  ASSERT_TRUE(clusters.ok());
  bool key_exists = (*metadata_->GetKey(key.id)).has_value();
  int live = 0;
  for (const Cluster& c : *clusters) {
    if (c.state == "deleted") continue;
    ++live;
    EXPECT_TRUE((*metadata_->GetKey(c.encryption_key_id)).has_value())
        << "cluster " << c.id << " (" << c.state << ") lost its key record";
  }
  int deletes_ok = 0;
  for (int i = 0; i < kThreads; i += 2) deletes_ok += results[i].ok();
  EXPECT_EQ(key_exists, deletes_ok == 0);
  EXPECT_LE(deletes_ok, 1);
  if (!key_exists) {
    EXPECT_EQ(live, 0);
  }
  for (int i = 1; i < kThreads; i += 2) {
    if (!results[i].ok()) {
      EXPECT_TRUE(absl::IsFailedPrecondition(results[i])) << results[i];
    }
  }
}

// Test Encryption Key: checks that ran and failed make the key failed, naming each; a test that
// never reached the KMS (no client for the provider on this server, the KMS not answering)
// proves nothing about the key and leaves it as it was — pending for a new key (issue 11).
TEST_F(KeyRecordsTest, ATestThatCouldNotReachTheKmsLeavesTheKeyAsItWas) {
  EncryptionKey key = NewKey("eastus", "kv-east");
  ASSERT_EQ(key.state, "pending");

  // This server has no client for the provider: "connect" fails, the key stays pending.
  std::unique_ptr<KmsFactory> no_clients = NewRegistryKmsFactory({});
  ControlPlane unwired(*metadata_, *no_clients, *runtime_, ServiceIdentity{});
  auto t = unwired.TestKey(owner_, project_, key.id);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->key.state, "pending");
  ASSERT_FALSE(t->checks.empty());
  EXPECT_EQ(t->checks[0].step, "connect");
  EXPECT_FALSE(t->checks[0].ok);
  EXPECT_TRUE(absl::StrContains(t->key.status_message,
                                "connect: this keyward server has no "
                                "Azure identity"))
      << t->key.status_message;
  EXPECT_TRUE(absl::StrContains(t->key.status_message, "the key stays pending"))
      << t->key.status_message;
  EXPECT_EQ((**metadata_->GetKey(key.id)).state, "pending");

  // The KMS does not answer: the same.
  kms_state_["unreachable"] = true;
  world_.WriteKmsState();
  t = control_->TestKey(owner_, project_, key.id);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->key.state, "pending") << t->key.status_message;
  EXPECT_TRUE(absl::StrContains(t->key.status_message, "describe: the KMS did not answer"))
      << t->key.status_message;
  EXPECT_EQ((**metadata_->GetKey(key.id)).state, "pending");

  // The KMS answers that keyward may not use the key: failed, naming the check and the fix.
  kms_state_["unreachable"] = false;
  kms_state_["keys"][key.key_name] = {{"enabled", true},    {"purge_protection", true},
                                      {"region", "eastus"}, {"granted", false},
                                      {"version", "v1"},    {"secret", *RandomHex(32)}};
  world_.WriteKmsState();
  t = control_->TestKey(owner_, project_, key.id);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->key.state, "failed");
  EXPECT_TRUE(absl::StartsWith(t->key.status_message,
                               "describe: keyward's application is not "
                               "allowed"))
      << t->key.status_message;
  EXPECT_TRUE(absl::StrContains(t->key.status_message, "Step 2.9")) << t->key.status_message;
  EXPECT_EQ((**metadata_->GetKey(key.id)).state, "failed");

  // A failed key that cannot be reached stays failed; once granted it becomes active, and an
  // active key stays active when a later test cannot reach the KMS.
  kms_state_["unreachable"] = true;
  world_.WriteKmsState();
  EXPECT_EQ(control_->TestKey(owner_, project_, key.id)->key.state, "failed");
  kms_state_["unreachable"] = false;
  kms_state_["keys"][key.key_name]["granted"] = true;
  world_.WriteKmsState();
  EXPECT_EQ(control_->TestKey(owner_, project_, key.id)->key.state, "active");
  kms_state_["unreachable"] = true;
  world_.WriteKmsState();
  EXPECT_EQ(control_->TestKey(owner_, project_, key.id)->key.state, "active");
}

// A test that fails on this server's own KMS configuration (AWS KMS with no AWS credentials at
// all) is not the customer's fault: the key stays pending, the answer says what the server
// lacks, and the attempt is audited. A refusal by the KMS still makes the key failed (issue 11).
TEST_F(KeyRecordsTest, ATestFailingOnTheServersOwnKmsSetupLeavesTheKeyPending) {
  EncryptionKey key = NewKey("eastus", "kv-setup");
  kms_state_["no_credentials"] = true;
  world_.WriteKmsState();
  auto t = control_->TestKey(owner_, project_, key.id);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->key.state, "pending") << t->key.status_message;
  EXPECT_TRUE(absl::StartsWith(t->key.status_message,
                               "describe: this keyward server has no credentials for the KMS: "
                               "set FAKE_KMS_TOKEN, then restart keyward serve"))
      << t->key.status_message;
  EXPECT_TRUE(absl::StrContains(t->key.status_message,
                                "that is this keyward server's own configuration, not the key's, "
                                "so the key stays pending"))
      << t->key.status_message;
  EXPECT_EQ((**metadata_->GetKey(key.id)).state, "pending");
  int audited = 0;
  for (const AuditEvent& e : AuditLog()) {
    if (e.action == "encryption_key.test" && e.target == key.id && e.result == "failure" &&
        absl::StrContains(e.message, "no credentials for the KMS")) {
      ++audited;
    }
  }
  EXPECT_EQ(audited, 1);

  // With credentials, a KMS refusal is the customer's to fix: failed, naming the check.
  kms_state_["no_credentials"] = false;
  kms_state_["keys"][key.key_name] = {{"enabled", true},    {"purge_protection", true},
                                      {"region", "eastus"}, {"granted", false},
                                      {"version", "v1"},    {"secret", *RandomHex(32)}};
  world_.WriteKmsState();
  t = control_->TestKey(owner_, project_, key.id);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->key.state, "failed") << t->key.status_message;
  EXPECT_TRUE(absl::StartsWith(t->key.status_message, "describe: keyward's application is not"))
      << t->key.status_message;
  // A failed key keeps failed while the server lacks credentials, and turns active once fixed.
  kms_state_["no_credentials"] = true;
  world_.WriteKmsState();
  EXPECT_EQ(control_->TestKey(owner_, project_, key.id)->key.state, "failed");
  kms_state_["no_credentials"] = false;
  kms_state_["keys"][key.key_name]["granted"] = true;
  world_.WriteKmsState();
  EXPECT_EQ(control_->TestKey(owner_, project_, key.id)->key.state, "active");
}

TEST_F(KeyRecordsTest, UnknownRegionsAreRefusedWithTheClosestNames) {
  KeyRequest typo{"azure-key-vault", "eastu",
                  json{{"key_vault_name", "kv-east"}, {"key_name_prefix", "p"}}, "azure"};
  auto key = control_->CreateKey(owner_, project_, typo);
  ASSERT_TRUE(absl::IsInvalidArgument(key.status()));
  EXPECT_EQ(key.status().message(), "unknown Azure region 'eastu'; did you mean eastus, eastus2?");
  auto cluster = control_->CreateCluster(owner_, project_,
                                         {"c", "aws", "us-esat-1", "dedicated", std::nullopt});
  ASSERT_TRUE(absl::IsInvalidArgument(cluster.status()));
  EXPECT_TRUE(absl::StrContains(cluster.status().message(),
                                "unknown AWS region 'us-esat-1'; did you mean us-east-1"))
      << cluster.status().message();
  auto gcp = control_->CreateCluster(owner_, project_,
                                     {"g", "gcp", "us-central", "dedicated", std::nullopt});
  EXPECT_TRUE(absl::StrContains(gcp.status().message(), "did you mean us-central1"))
      << gcp.status().message();
  auto keys = control_->ListKeys(owner_, project_, {0, 10});
  EXPECT_TRUE(keys->empty());
}

TEST_F(KeyRecordsTest, OnlyOwnersChangeOrDeleteKeys) {
  EncryptionKey key = NewKey("westus", "kv-west");
  User member = Member("meg", "project_member");
  auto patched = control_->UpdateKey(member, project_, key.id,
                                     {"", "", json{{"key_vault_name", "kv-other"}}, "azure"});
  EXPECT_TRUE(absl::IsPermissionDenied(patched.status())) << patched.status();
  EXPECT_TRUE(absl::IsPermissionDenied(control_->DeleteKey(member, project_, key.id).status()));
  User viewer = Member("vic", "project_viewer");
  EXPECT_TRUE(absl::IsPermissionDenied(control_->DeleteKey(viewer, project_, key.id).status()));
  EXPECT_TRUE((*metadata_->GetKey(key.id)).has_value());
  User project_owner = Member("olga", "project_owner");
  EXPECT_TRUE(control_->DeleteKey(project_owner, project_, key.id).ok());
}

TEST_F(KeyRecordsTest, RefusalsForLackOfARoleAreAudited) {
  ActiveKey("eastus");
  auto c = NewCluster("orders", "eastus");
  ASSERT_TRUE(c.ok()) << c.status();
  User viewer = Member("vic", "project_viewer");
  auto paused = control_->PauseCluster(viewer, c->cluster.id);
  ASSERT_TRUE(absl::IsPermissionDenied(paused.status()));
  User member = Member("meg", "project_member");
  ASSERT_TRUE(absl::IsPermissionDenied(control_->DeleteCluster(member, c->cluster.id).status()));

  std::vector<AuditEvent> denied;
  for (const auto& e : AuditLog()) {
    if (e.result == "failure" && e.message.rfind("denied: ", 0) == 0) denied.push_back(e);
    for (const std::string& t : tokens_) {
      EXPECT_EQ(absl::StrCat(e.actor, e.action, e.target, e.message).find(t), std::string::npos)
          << "a token in the audit log";
    }
  }
  ASSERT_EQ(denied.size(), 2u);
  EXPECT_EQ(denied[0].action, "cluster.pause");
  EXPECT_EQ(denied[0].target, c->cluster.id);
  EXPECT_EQ(denied[0].actor, absl::StrCat(viewer.id, " (vic)"));
  EXPECT_TRUE(absl::StrContains(denied[0].message, "project_viewer")) << denied[0].message;
  EXPECT_EQ(denied[1].action, "cluster.delete");
  EXPECT_EQ(denied[1].actor, absl::StrCat(member.id, " (meg)"));
  EXPECT_EQ((*metadata_->GetCluster(c->cluster.id))->state, "available");
}

TEST_F(KeyRecordsTest, ANonOwnerAskingForACmekProjectIsAuditedForTheOrganization) {
  User member = Member("meg", "project_member");
  auto p = control_->CreateProject(member, "secret", true);
  ASSERT_TRUE(absl::IsPermissionDenied(p.status()));
  auto events = metadata_->ListAudit(owner_.org_id, 0, INT64_MAX, {0, 10});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].action, "project.create");
  EXPECT_EQ((*events)[0].target, "secret");
  EXPECT_EQ((*events)[0].result, "failure");
}

}  // namespace
}  // namespace keyward
