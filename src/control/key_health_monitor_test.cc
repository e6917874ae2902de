// The key health monitor's rules at the lowest level that shows them: a real control plane,
// metadata store and encrypted stores, with the fake KMS behind the KMS seam and a test clock.
#include "control/key_health_monitor.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "control_plane_world.h"
#include "util/file_util.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Counts Describe calls per key name, to show one check per key however many clusters it has.
class CountingFactory : public KmsFactory {
 public:
  explicit CountingFactory(std::unique_ptr<KmsFactory> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> ProviderFor(
      const EncryptionKey& key) override {
    auto p = inner_->ProviderFor(key);
    if (!p.ok()) return p;
    return std::shared_ptr<MasterKeyProvider>(std::make_shared<Counting>(*p, this));
  }
  std::atomic<int> describes{0};

 private:
  struct Counting : MasterKeyProvider {
    Counting(std::shared_ptr<MasterKeyProvider> p, CountingFactory* f) : p_(std::move(p)), f_(f) {}
    std::string_view provider_name() const override { return p_->provider_name(); }
    std::string key_id() const override { return p_->key_id(); }
    absl::StatusOr<WrappedKey> Wrap(const SecretBytes& s, std::string_view c) override {
      return p_->Wrap(s, c);
    }
    absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& w, std::string_view c) override {
      return p_->Unwrap(w, c);
    }
    absl::StatusOr<KeyDescription> Describe() override {
      ++f_->describes;
      return p_->Describe();
    }
    std::shared_ptr<MasterKeyProvider> p_;
    CountingFactory* f_;
  };
  std::unique_ptr<KmsFactory> inner_;
};

class KeyHealthMonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world_.ok()) << world_.error();
    KeyMonitorOptions mo;
    mo.interval_ms = 30'000;
    mo.grace_ms = 120'000;
    monitor_ = std::make_unique<KeyHealthMonitor>(*metadata_, *world_.kms, *control_,
                                                  world_.UseScheduler(), mo);
    project_ = world_.NewProject("payments", true);
    key_ = world_.ActiveAzureKey(project_, "eastus", "kv-pay");
    ASSERT_EQ(key_.state, "active");
  }
  void TearDown() override {
    // Monitor jobs may still be queued: stop the scheduler before the monitor goes.
    if (world_.scheduler) world_.scheduler->Stop();
  }

  void WriteKms() { world_.WriteKmsState(); }
  json& KeyState() { return world_.kms_state()["keys"][key_.key_name]; }

  std::string NewCluster(const std::string& name) {
    auto c = control_->CreateCluster(owner_, project_,
                                     {name, "azure", "eastus", "dedicated", std::nullopt});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->cluster.id : "";
  }
  Cluster Get(const std::string& id) { return **metadata_->GetCluster(id); }
  EncryptionKey Key() { return **metadata_->GetKey(key_.id); }

  // Moves the clock on and lets the monitor do what is due (its checks run as jobs).
  void Advance(int64_t ms) {
    world_.AdvanceClock(ms);
    monitor_->Tick();
    world_.RunDue();
  }

  CountingFactory* counting_ = nullptr;
  ControlPlaneWorld world_{{.prefix = "monitor",
                            .test_clock = true,
                            .wrap_kms = [this](std::unique_ptr<KmsFactory> inner) {
                              auto c = std::make_unique<CountingFactory>(std::move(inner));
                              counting_ = c.get();
                              return std::unique_ptr<KmsFactory>(std::move(c));
                            }}};
  CountingFactory*& kms_ = counting_;
  std::unique_ptr<MetadataStore>& metadata_ = world_.metadata;
  std::unique_ptr<ClusterRuntime>& runtime_ = world_.runtime;
  std::unique_ptr<ControlPlane>& control_ = world_.control;
  User& owner_ = world_.owner;
  std::unique_ptr<KeyHealthMonitor> monitor_;
  std::string project_;
  EncryptionKey key_;
};

TEST_F(KeyHealthMonitorTest, DisabledKeyCutsTheClusterWithinOneIntervalAndEnablingRestoresIt) {
  std::string id = NewCluster("orders");
  ASSERT_TRUE(runtime_->Get(id)->store->Put("k", {"v", 0}).ok());
  Advance(30'000);
  EXPECT_EQ(Get(id).state, "available");
  EXPECT_GT(Get(id).encryption.last_key_check_at, 0);
  EXPECT_EQ(Get(id).encryption.key_version, "v1");

  KeyState()["enabled"] = false;
  WriteKms();
  Advance(30'000);
  Cluster cut = Get(id);
  EXPECT_EQ(cut.state, "inaccessible");
  EXPECT_EQ(cut.state_cause, "key");
  EXPECT_NE(cut.state_message.find("disabled"), std::string::npos) << cut.state_message;
  EXPECT_NE(cut.state_message.find(key_.key_name), std::string::npos) << cut.state_message;
  EXPECT_FALSE(runtime_->IsOpen(id)) << "the store must be closed and its keys wiped";
  EXPECT_EQ(Key().state, "failed");
  EXPECT_NE(Key().last_check_error.find("disabled"), std::string::npos);

  // Still disabled: stays cut.
  Advance(30'000);
  EXPECT_EQ(Get(id).state, "inaccessible");

  KeyState()["enabled"] = true;
  WriteKms();
  Advance(30'000);
  EXPECT_EQ(Get(id).state, "available");
  EXPECT_EQ(Key().state, "active") << "the key record heals without a manual test";
  auto v = runtime_->Get(id)->store->Get("k");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->data, "v");
}

TEST_F(KeyHealthMonitorTest, RemovedPermissionDeletedKeyAndExpiryAreDefinitive) {
  std::string id = NewCluster("orders");
  for (auto change : std::vector<std::function<void()>>{
           [&] { KeyState()["granted"] = false; },
           [&] { world_.kms_state()["keys"].erase(key_.key_name); },
           [&] { KeyState()["exp"] = world_.now_ms() / 1000 - 1; }}) {
    json saved = world_.kms_state();
    change();
    WriteKms();
    Advance(30'000);
    EXPECT_EQ(Get(id).state, "inaccessible") << world_.kms_state().dump();
    world_.kms_state() = saved;
    WriteKms();
    Advance(30'000);
    EXPECT_EQ(Get(id).state, "available") << Get(id).state_message;
  }
}

TEST_F(KeyHealthMonitorTest, TransientTroubleIsRiddenOutUntilTheGraceEnds) {
  std::string id = NewCluster("orders");
  world_.kms_state()["unreachable"] = true;
  WriteKms();
  for (int i = 0; i < 10; ++i) Advance(10'000);  // 100 s < 120 s grace
  EXPECT_EQ(Get(id).state, "available");
  EXPECT_NE(Get(id).encryption.last_key_check_error.find("transient"), std::string::npos);
  EXPECT_TRUE(runtime_->Get(id)->store->Put("k", {"during", 0}).ok());
  for (int i = 0; i < 4; ++i) Advance(10'000);  // past the grace
  EXPECT_EQ(Get(id).state, "inaccessible");
  EXPECT_NE(Get(id).state_message.find("grace"), std::string::npos) << Get(id).state_message;
  world_.kms_state()["unreachable"] = false;
  WriteKms();
  Advance(30'000);
  EXPECT_EQ(Get(id).state, "available");
  auto v = runtime_->Get(id)->store->Get("k");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->data, "during");
}

TEST_F(KeyHealthMonitorTest, OneCheckPerKeyPerIntervalWhateverTheClusterCount) {
  for (int i = 0; i < 20; ++i) NewCluster("c" + std::to_string(i));
  Advance(30'000);  // the first interval
  int before = kms_->describes.load();
  Advance(30'000);
  Advance(30'000);
  EXPECT_EQ(kms_->describes.load() - before, 2);
}

TEST_F(KeyHealthMonitorTest, NewKeyVersionIsRewrappedOnlineAndOldVersionNoLongerNeeded) {
  std::string id = NewCluster("orders");
  ASSERT_TRUE(runtime_->Get(id)->store->Put("k", {"v", 0}).ok());
  KeyState()["version"] = "v2";
  WriteKms();
  Advance(30'000);
  EXPECT_EQ(Get(id).encryption.key_version, "v2");
  EXPECT_EQ(Key().current_version, "v2");
  EXPECT_TRUE(runtime_->IsOpen(id)) << "re-wrap must not close the cluster";
  KeyState()["version"] = "v3";
  WriteKms();
  Advance(30'000);
  EXPECT_EQ(Get(id).encryption.key_version, "v3");
}

TEST_F(KeyHealthMonitorTest, PausedClustersAreLeftAloneAndAutoRestoreOnlyUndoesTheMonitor) {
  std::string a = NewCluster("a");
  std::string b = NewCluster("b");
  ASSERT_TRUE(control_->PauseCluster(owner_, b).ok());
  KeyState()["enabled"] = false;
  WriteKms();
  Advance(30'000);
  EXPECT_EQ(Get(a).state, "inaccessible");
  EXPECT_EQ(Get(b).state, "paused");
  KeyState()["enabled"] = true;
  WriteKms();
  Advance(30'000);
  EXPECT_EQ(Get(a).state, "available");
  EXPECT_EQ(Get(b).state, "paused") << "a paused cluster stays paused";
}

TEST_F(KeyHealthMonitorTest, PauseRacingBackupPolicyAlwaysEndsPaused) {
  std::string id = NewCluster("orders");
  for (int round = 0; round < 50; ++round) {
    absl::StatusOr<Cluster> paused;
    std::thread t1([&] { paused = control_->PauseCluster(owner_, id); });
    std::thread t2([&] {
      control_->SetBackupPolicy(owner_, id, {"daily", 7, false, ""}).IgnoreError();
    });
    t1.join();
    t2.join();
    ASSERT_TRUE(paused.ok()) << paused.status();
    ASSERT_EQ(Get(id).state, "paused") << "round " << round;
    ASSERT_TRUE(control_->ResumeCluster(owner_, id).ok());
  }
}

}  // namespace
}  // namespace keyward
