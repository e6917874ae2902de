#include "control_plane_world.h"

#include <gtest/gtest.h>

#include <fstream>

#include "crypto/random.h"
#include "fake_kms.h"
#include "kms/escrow/escrow_provider.h"

namespace keyward {

namespace fs = std::filesystem;
using nlohmann::json;

ControlPlaneWorld::ControlPlaneWorld(ControlPlaneWorldOptions options)
    : options_(std::move(options)), now_ms_(options_.start_ms) {
  root_ = fs::temp_directory_path() / ("kw-" + options_.prefix + "-" + *RandomHex(6));
  fs::create_directories(root_ / "clusters");
  state_path_ = (root_ / "kms.json").string();
  kms_state_ = {{"keys", json::object()}};
  auto escrow = EscrowProvider::LoadOrCreate((root_ / "escrow.key").string());
  if (!escrow.ok()) {
    Fail(escrow.status().ToString());
    return;
  }
  kms = NewFakeKmsFactory(std::shared_ptr<MasterKeyProvider>(std::move(*escrow)), state_path_);
  if (options_.wrap_kms) kms = options_.wrap_kms(std::move(kms));
  auto md = OpenSqliteMetadataStore((root_ / "metadata.db").string());
  if (!md.ok()) {
    Fail(md.status().ToString());
    return;
  }
  metadata = std::move(*md);
  auto r = RespServer::New({});
  if (!r.ok()) {
    Fail(r.status().ToString());
    return;
  }
  resp = std::move(*r);
  ClusterRuntimeOptions ro;
  ro.data_dir = root_.string();
  if (options_.tune_runtime) options_.tune_runtime(ro);
  runtime =
      std::make_unique<ClusterRuntime>(ro, *resp, SharedStorageResources::New(8 << 20, 16 << 20));
  std::function<int64_t()> clock;
  if (options_.test_clock) clock = [this] { return now_ms_.load(); };
  control = std::make_unique<ControlPlane>(*metadata, *kms, *runtime, ServiceIdentity{}, clock);
  auto token = control->Bootstrap();
  if (!token.ok()) {
    Fail(token.status().ToString());
    return;
  }
  owner_token = *token;
  auto user = control->Authenticate(*token);
  if (!user.ok()) {
    Fail(user.status().ToString());
    return;
  }
  owner = *user;
}

ControlPlaneWorld::~ControlPlaneWorld() {
  if (scheduler) scheduler->Stop();
  if (runtime) runtime->Shutdown();
  if (resp) resp->Stop();
  std::error_code ec;
  fs::remove_all(root_, ec);
}

Scheduler& ControlPlaneWorld::UseScheduler() {
  std::function<int64_t()> clock;
  if (options_.test_clock) clock = [this] { return now_ms_.load(); };
  scheduler = std::make_unique<Scheduler>(clock);
  control->SetBackgroundRunner(
      [this](std::function<void()> job) { scheduler->Submit("job", std::move(job)); });
  return *scheduler;
}

void ControlPlaneWorld::Advance(int64_t ms) {
  now_ms_ += ms;
  RunDue();
}

void ControlPlaneWorld::RunDue() {
  if (!scheduler) return;
  while (scheduler->RunDueForTest() > 0) {
  }
}

void ControlPlaneWorld::WriteKmsState() { std::ofstream(state_path_) << kms_state_.dump(); }

void ControlPlaneWorld::CustomerCreatesKey(const std::string& key_name, const std::string& region) {
  kms_state_["keys"][key_name] = {{"enabled", true},  {"purge_protection", true},
                                  {"region", region}, {"granted", true},
                                  {"version", "v1"},  {"secret", *RandomHex(32)}};
  WriteKmsState();
}

EncryptionKey ControlPlaneWorld::ActiveAzureKey(const std::string& project,
                                                const std::string& region,
                                                const std::string& vault) {
  KeyRequest req{"azure-key-vault", region,
                 json{{"key_vault_name", vault}, {"key_name_prefix", "cmek"}}, "azure"};
  auto key = control->CreateKey(owner, project, req);
  EXPECT_TRUE(key.ok()) << key.status();
  if (!key.ok()) return EncryptionKey{};
  CustomerCreatesKey(key->key_name, region);
  auto tested = control->TestKey(owner, project, key->id);
  EXPECT_TRUE(tested.ok()) << tested.status();
  if (!tested.ok()) return *key;
  EXPECT_EQ(tested->key.state, "active") << tested->key.status_message;
  return tested->key;
}

std::string ControlPlaneWorld::NewProject(const std::string& name, bool cmek) {
  auto project = control->CreateProject(owner, name, cmek);
  EXPECT_TRUE(project.ok()) << project.status();
  return project.ok() ? project->id : "";
}

std::vector<AuditEvent> ControlPlaneWorld::Audit(const std::string& project) {
  auto events = control->ListAudit(owner, project, 0, INT64_MAX, {0, 10000});
  EXPECT_TRUE(events.ok()) << events.status();
  return events.ok() ? *events : std::vector<AuditEvent>{};
}

}  // namespace keyward
