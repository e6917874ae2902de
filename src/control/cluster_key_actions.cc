// What the key health monitor does to a cluster (cut it when its key is unusable, restore it,
// re-wrap its dictionary under a new key version), dictionary-key rotation, re-encryption under
// a new data key, and INFO's encryption section. No lock is held across a KMS call.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "storage/storage_error.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {

using control_internal::IllegalTransition;
using control_internal::KeyLabel;
using nlohmann::json;

absl::Status ControlPlane::CutCluster(const std::string& id, const EncryptionKey& key,
                                      const std::string& reason) {
  Claim claim = TryClaimCluster(id);
  if (!claim.held()) return absl::OkStatus();  // busy: the next check tries again
  ASSIGN_OR_RETURN(std::optional<Cluster> c, metadata_.GetCluster(id));
  if (!c || (c->state != "available" && c->state != "degraded")) return absl::OkStatus();
  std::string message = absl::StrCat(KeyLabel(key), " is unusable: ", reason);
  std::string client_message =
      absl::StrCat("cluster ", id, " is inaccessible: ", message,
                   "; the data is safe and comes back when the key is usable again");
  // Sealing closes the store: acknowledged writes are in the synced WAL, the keys are wiped.
  auto port = runtime_.Seal(id, c->password_sha256_hex, c->port, client_message, DurabilityOf(*c));
  if (!port.ok()) {
    runtime_.Close(id);  // cannot keep the endpoint: close it all the same (fail closed)
  }
  absl::Status st = Transition(*c, "inaccessible", message, "key",
                               port.ok() ? std::optional<int>(*port) : std::nullopt);
  Audit(nullptr, c->project_id, "cluster.key_lost", id, &key, st, message,
        c->encryption.key_version);
  LogWarn("cluster.inaccessible", absl::StrCat("cluster ", id, " made inaccessible: ", message),
          {{"cluster_id", id}});
  return st;
}

absl::Status ControlPlane::RestoreCluster(const std::string& id, const EncryptionKey& key) {
  Claim claim = TryClaimCluster(id);
  if (!claim.held()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::optional<Cluster> c, metadata_.GetCluster(id));
  if (!c || c->state != "inaccessible" || c->state_cause != "key") return absl::OkStatus();
  absl::Status st = OpenCluster(*c, /*create=*/false);
  if (st.ok()) {
    st = Transition(*c, "available", "", "", c->port);
    if (!st.ok()) runtime_.Close(id);
  }
  Audit(nullptr, c->project_id, "cluster.key_restored", id, &key, st,
        "the key is usable again; reopened");
  if (st.ok()) RecordProtection(id, /*wrapped_now=*/false);
  return st;
}

absl::Status ControlPlane::RewrapCluster(const std::string& id, const EncryptionKey& key) {
  Claim claim = TryClaimCluster(id);
  if (!claim.held()) return absl::OkStatus();
  std::shared_ptr<KeyDictionary> dict = runtime_.Dictionary(id);
  if (!dict) return absl::OkStatus();
  std::string before = dict->wrapped_key().key_version;
  ASSIGN_OR_RETURN(std::shared_ptr<MasterKeyProvider> provider, kms_.ProviderFor(key));
  absl::Status st = dict->Rewrap(*provider);
  std::string after = dict->wrapped_key().key_version;
  ASSIGN_OR_RETURN(std::optional<Cluster> c, metadata_.GetCluster(id));
  Audit(nullptr, c ? c->project_id : "", "cluster.rewrap", id, &key, st,
        absl::StrCat("dictionary key re-wrapped: version ", before, " -> ", after), after);
  RETURN_IF_ERROR(st);
  RecordProtection(id, /*wrapped_now=*/true);
  return absl::OkStatus();
}

absl::StatusOr<Cluster> ControlPlane::RotateDictionaryKey(const User& actor,
                                                          const std::string& id) {
  ASSIGN_OR_RETURN(Claimed held,
                   ClaimForChange(actor, id, Need::kOwner, "cluster.rotate_dictionary_key"));
  Cluster& c = held.cluster;
  const std::optional<EncryptionKey>& key = held.key;
  std::shared_ptr<KeyDictionary> dict = runtime_.Dictionary(id);
  if (!dict || !key) return IllegalTransition(c, "rotate the dictionary key of");
  ASSIGN_OR_RETURN(std::shared_ptr<MasterKeyProvider> provider, kms_.ProviderFor(*key));
  std::string before = dict->dictionary_key_id();
  absl::Status st = dict->RotateDictionaryKey(*provider);
  std::string after = dict->dictionary_key_id();
  Audit(&actor, c.project_id, "cluster.rotate_dictionary_key", id, &*key, st,
        absl::StrCat("dictionary key ", before, " -> ", after), dict->wrapped_key().key_version);
  RETURN_IF_ERROR(st);
  RecordProtection(id, /*wrapped_now=*/true);
  ASSIGN_OR_RETURN(std::optional<Cluster> stored, metadata_.GetCluster(id));
  return stored ? *stored : c;
}

absl::StatusOr<Cluster> ControlPlane::Reencrypt(const User& actor, const std::string& id) {
  ASSIGN_OR_RETURN(Cluster c, LoadCluster(actor, id, Need::kOwner, nullptr, "cluster.reencrypt"));
  ASSIGN_OR_RETURN(std::optional<EncryptionKey> key, metadata_.GetKey(c.encryption_key_id));
  if (c.engine == "mariadb") {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster ", id,
        " is a mariadb cluster: MariaDB re-encrypts its pages itself, in the background, after "
        "each data-key rotation (innodb_encryption_rotate_key_age); there is nothing to start"));
  }
  auto h = runtime_.Get(id);
  if (!h || !key) return IllegalTransition(c, "re-encrypt");
  int64_t started = Now();
  json running = {
      {"state", "running"}, {"files_done", 0}, {"files_total", 0}, {"started_at", started}};
  ASSIGN_OR_RETURN(bool started_now, metadata_.StartClusterReencrypt(id, running.dump()));
  if (!started_now) {
    return absl::FailedPreconditionError(absl::StrCat("cluster ", id,
                                                      " is being re-encrypted already; watch its "
                                                      "encryption.reencrypt_progress"));
  }
  Audit(&actor, c.project_id, "cluster.reencrypt", id, &*key, absl::OkStatus(), "started");
  std::string project_id = c.project_id;
  EncryptionKey k = *key;
  // The job holds the store only while it works on it: a close (pause, key loss, shutdown)
  // cancels the re-encryption and must be what releases the store and wipes its keys.
  std::weak_ptr<ClusterStore> weak_store = h->store;
  h.reset();
  auto job = [this, id, project_id, k, started, weak_store]() {
    auto report = [&](uint64_t done, uint64_t total) {
      json p = {{"state", "running"},
                {"files_done", done},
                {"files_total", total},
                {"started_at", started}};
      metadata_.RecordClusterReencrypt(id, p.dump()).IgnoreError();
    };
    absl::Status st = absl::CancelledError(
        absl::StrCat("cluster ", id,
                     " was closed before re-encryption began; run it again once it is available"));
    json ids;
    if (std::shared_ptr<ClusterStore> store = weak_store.lock()) {
      st = store->Reencrypt(report);
      absl::StatusOr<std::map<uint32_t, uint64_t>> in_use = absl::CancelledError("closing");
      if (!store->stopping()) in_use = store->DataKeyIdsInUse();
      if (in_use.ok()) {
        ids = json::array();
        for (const auto& [kid, files] : *in_use) ids.push_back(kid);
      }
    }
    json end = {{"state", st.ok() ? "completed" : "failed"},
                {"started_at", started},
                {"finished_at", Now()}};
    if (!st.ok()) end["error"] = std::string(st.message());
    if (ids.is_array()) {
      metadata_.RecordClusterDataKeys(id, ids.dump()).IgnoreError();
      end["data_key_ids_in_use"] = ids;
    }
    metadata_.RecordClusterReencrypt(id, end.dump()).IgnoreError();
    Audit(nullptr, project_id, "cluster.reencrypt", id, &k, st, "finished");
  };
  if (background_) {
    background_(job);
  } else {
    std::thread(job).detach();
  }
  ASSIGN_OR_RETURN(std::optional<Cluster> stored, metadata_.GetCluster(id));
  return stored ? *stored : c;
}

std::string ControlPlane::EncryptionInfoSection(const std::string& cluster_id) {
  auto c = metadata_.GetCluster(cluster_id);
  if (!c.ok() || !*c) return "";
  auto key = metadata_.GetKey((*c)->encryption_key_id);
  const ClusterEncryption& e = (*c)->encryption;
  std::string out = "# Encryption\r\n";
  auto line = [&](const char* name, const std::string& value) {
    std::string clean = value;
    for (char& ch : clean) {
      if (ch == '\r' || ch == '\n') ch = ' ';
    }
    absl::StrAppend(&out, name, ":", clean, "\r\n");
  };
  if (key.ok() && *key) {
    line("encryption_provider", (*key)->provider);
    line("encryption_key_id", (*key)->id);
    line("encryption_key_name", (*key)->key_name);
  }
  line("encryption_key_version", e.key_version);
  line("encryption_wrapped_at", std::to_string(e.wrapped_at));
  line("encryption_dictionary_key_id", e.dictionary_key_id);
  line("encryption_data_key_ids_in_use", e.data_key_ids_json);
  line("encryption_last_key_check_at", std::to_string(e.last_key_check_at));
  line("encryption_last_key_check_error", e.last_key_check_error);
  line("encryption_reencrypt", e.reencrypt_json);
  return out;
}

}  // namespace keyward
