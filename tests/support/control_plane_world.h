#pragma once
// A real control plane for control-plane unit tests: SQLite metadata, encrypted stores under a
// temporary data directory, an in-process RESP server, and the fake KMS (fake_kms.h) behind the
// KMS seam, whose state the test edits to play the customer. Rules are tested here, at the
// lowest level that shows them; the REST and CLI layers are tested end to end elsewhere.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "control/control_plane.h"
#include "control/scheduler.h"

namespace keyward {

struct ControlPlaneWorldOptions {
  // Names the temporary directory (kw-<prefix>-<random>).
  std::string prefix = "cp";
  // The clock the control plane and scheduler read; false: the system clock.
  bool test_clock = false;
  int64_t start_ms = 1'800'000'000'000;
  // Changes the cluster runtime's options (data_dir is set already); null: the defaults.
  std::function<void(ClusterRuntimeOptions&)> tune_runtime;
  // Wraps the fake KMS factory (e.g. to count calls); null: used as it is.
  std::function<std::unique_ptr<KmsFactory>(std::unique_ptr<KmsFactory>)> wrap_kms;
};

class ControlPlaneWorld {
 public:
  // Builds everything and bootstraps the organization (owner, owner token). Check ok() after.
  explicit ControlPlaneWorld(ControlPlaneWorldOptions options = {});
  ~ControlPlaneWorld();
  ControlPlaneWorld(const ControlPlaneWorld&) = delete;
  ControlPlaneWorld& operator=(const ControlPlaneWorld&) = delete;

  // Empty when set-up worked; else what failed.
  const std::string& error() const { return error_; }
  bool ok() const { return error_.empty(); }

  // A scheduler on the world's clock whose jobs run only in Advance / RunDue (background work
  // of the control plane is submitted to it). Call once, after construction.
  Scheduler& UseScheduler();
  // Moves the test clock on by `ms` and runs whatever the scheduler has due.
  void Advance(int64_t ms);
  void AdvanceClock(int64_t ms) { now_ms_ += ms; }
  void RunDue();

  // The fake KMS as the customer left it: "keys" by key name (see fake_kms.h).
  nlohmann::json& kms_state() { return kms_state_; }
  // Writes kms_state() where the fake KMS reads it (every call re-reads it).
  void WriteKmsState();
  // The customer's part for a key record: the key exists under its name in `region`, enabled,
  // purge-protected, access granted, version v1 with a fresh secret.
  void CustomerCreatesKey(const std::string& key_name, const std::string& region);
  // Creates an Azure key record in `project` (vault `vault`, prefix "cmek"), plays the customer
  // and tests it; EXPECTs it active.
  EncryptionKey ActiveAzureKey(const std::string& project, const std::string& region,
                               const std::string& vault);

  // A CMEK (or plain) project owned by the organization owner.
  std::string NewProject(const std::string& name, bool cmek);
  // Audit events of `project` (or of the organization with its id), oldest first.
  std::vector<AuditEvent> Audit(const std::string& project);

  const std::filesystem::path& root() const { return root_; }
  int64_t now_ms() const { return now_ms_.load(); }

  std::unique_ptr<KmsFactory> kms;
  std::unique_ptr<MetadataStore> metadata;
  std::unique_ptr<RespServer> resp;
  std::unique_ptr<ClusterRuntime> runtime;
  std::unique_ptr<ControlPlane> control;
  std::unique_ptr<Scheduler> scheduler;
  User owner;
  std::string owner_token;

 private:
  void Fail(std::string what) {
    if (error_.empty()) error_ = std::move(what);
  }

  ControlPlaneWorldOptions options_;
  std::filesystem::path root_;
  std::string state_path_;
  nlohmann::json kms_state_;
  std::atomic<int64_t> now_ms_;
  std::string error_;
};

}  // namespace keyward
