// The cluster state machine of ControlPlane: start-up recovery, pause, resume and delete. The
// claims and transitions they use are in cluster_state.cc; what the key health monitor does to
// a cluster (cut, restore, re-wrap), dictionary-key rotation and re-encryption are in
// cluster_key_actions.cc. Every state change is a compare-and-set in the metadata store, made
// while this server holds the cluster's claim; no lock is held across a KMS call or a RocksDB
// open.

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

namespace control_internal {

// Allowed transitions of the cluster state machine.
bool CanTransition(const std::string& from, const std::string& to) {
  static const std::map<std::string, std::set<std::string>> kAllowed = {
      {"creating", {"available", "failed"}},
      {"available", {"paused", "inaccessible", "degraded", "deleting"}},
      {"paused", {"available", "inaccessible", "deleting"}},
      {"inaccessible", {"available", "paused", "deleting"}},
      // Read-only after a storage error: back to available when writes work again (disk space
      // freed, repaired, reopened by a resume), or closed like an available cluster.
      {"degraded", {"available", "paused", "inaccessible", "deleting"}},
      {"failed", {"deleting"}},
      {"deleting", {"deleted"}},
  };
  auto it = kAllowed.find(from);
  return it != kAllowed.end() && it->second.count(to) > 0;
}

absl::Status IllegalTransition(const Cluster& c, const std::string& action) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", action, " cluster ", c.id, ": it is ", c.state));
}

std::string KeyLabel(const EncryptionKey& key) {
  if (key.provider == "escrow") return "the service's escrow key";
  return absl::StrCat("encryption key ", key.key_name, " (", key.provider, "/", key.region, ")");
}

}  // namespace control_internal

using control_internal::CanTransition;
using control_internal::IllegalTransition;
using control_internal::KeyLabel;
using nlohmann::json;

Durability ControlPlane::DurabilityOf(const Cluster& c) const {
  return ParseDurability(c.durability).value_or(runtime_.default_durability());
}

absl::Status ControlPlane::OpenCluster(Cluster& c, bool create,
                                       const std::string& initial_password) {
  ASSIGN_OR_RETURN(std::optional<EncryptionKey> key, metadata_.GetKey(c.encryption_key_id));
  if (!key) return absl::DataLossError(absl::StrCat("cluster ", c.id, " has no key record"));
  ASSIGN_OR_RETURN(std::shared_ptr<MasterKeyProvider> provider, kms_.ProviderFor(*key));
  auto port = runtime_.Open(c.id, c.password_sha256_hex, provider, c.port, create, DurabilityOf(c),
                            initial_password);
  if (!port.ok()) {
    // The key is named only when it is what failed.
    return Reworded(port.status(),
                    IsStorageError(port.status())
                        ? absl::StrCat("cannot open cluster ", c.id, ": ", port.status().message())
                        : absl::StrCat("cannot open cluster ", c.id, " with ", KeyLabel(*key), ": ",
                                       port.status().message()));
  }
  c.port = *port;
  return absl::OkStatus();
}

void ControlPlane::RecordProtection(const std::string& cluster_id, bool wrapped_now) {
  std::shared_ptr<KeyDictionary> held = runtime_.Dictionary(cluster_id);
  if (!held) return;
  const KeyDictionary& dict = *held;
  auto h = runtime_.Get(cluster_id);  // kv: the store knows which data keys its files use
  WrappedKey wrapped = dict.wrapped_key();
  auto stored = metadata_.GetCluster(cluster_id);
  int64_t wrapped_at = wrapped_now ? Now() : 0;
  if (!wrapped_now && stored.ok() && *stored &&
      (*stored)->encryption.key_version == wrapped.key_version) {
    wrapped_at = (*stored)->encryption.wrapped_at;  // unchanged since we last saw it
  }
  absl::Status st = metadata_.RecordClusterWrap(cluster_id, wrapped.key_version, wrapped_at,
                                                dict.dictionary_key_id());
  if (auto in_use = h ? h->store->DataKeyIdsInUse() : absl::UnimplementedError("not kv");
      in_use.ok()) {
    json ids = json::array();
    for (const auto& [id, files] : *in_use) ids.push_back(id);
    if (st.ok()) st = metadata_.RecordClusterDataKeys(cluster_id, ids.dump());
  }
  if (!st.ok()) {
    LogWarn("cluster.protection_unrecorded",
            absl::StrCat("cluster ", cluster_id,
                         ": cannot record its encryption state: ", st.message()),
            {{"cluster_id", cluster_id}});
  }
}

absl::Status ControlPlane::Start() {
  // Clusters created before durability was stored get this server's --durability, once.
  ASSIGN_OR_RETURN(
      int64_t adopted,
      metadata_.AdoptDurability(std::string(DurabilityName(runtime_.default_durability()))));
  if (adopted > 0) {
    LogInfo("cluster.durability_adopted",
            absl::StrCat(adopted, " cluster(s) without a stored durability now have ",
                         std::string(DurabilityName(runtime_.default_durability()))),
            {{"clusters", adopted}});
  }
  ASSIGN_OR_RETURN(std::vector<Cluster> clusters, metadata_.ListClusters("", {0, 1 << 30}));
  RETURN_IF_ERROR(RecoverBackups(clusters));
  std::vector<Cluster> to_open;
  for (Cluster& c : clusters) {
    // A re-encryption running when the server stopped did not finish; left "running", every
    // later one would be refused. Its files are consistent either way: nothing is lost.
    json progress = json::parse(c.encryption.reencrypt_json, nullptr, false);
    if (progress.is_object() && progress.value("state", "") == "running") {
      progress["state"] = "failed";
      progress["error"] = "interrupted by a server restart; nothing is lost, run it again";
      progress["finished_at"] = Now();
      absl::Status st = metadata_.RecordClusterReencrypt(c.id, progress.dump());
      if (!st.ok())
        LogWarn("cluster.start_failed", absl::StrCat("cluster ", c.id, ": ", st.message()),
                {{"cluster_id", c.id}, {"state", c.state}});
    }
    // A failure here (a full disk refusing the metadata write, say) is reported and left for
    // the next start: it must not keep the API and every other cluster down.
    if (c.state == "creating") {
      // Never handed out: undo the files, keep the record so the user sees what happened.
      absl::Status st = runtime_.Shred(c.id);
      if (st.ok()) {
        st = Transition(c, "failed",
                        "creation was interrupted by a server restart; delete this cluster and "
                        "create it again");
      }
      Audit(nullptr, c.project_id, "cluster.recover", c.id, nullptr, st, "creating -> failed");
      if (!st.ok())
        LogWarn("cluster.start_failed", absl::StrCat("cluster ", c.id, ": ", st.message()),
                {{"cluster_id", c.id}, {"state", c.state}});
    } else if (c.state == "deleting") {
      absl::Status st = runtime_.Shred(c.id);
      if (st.ok()) st = Transition(c, "deleted", "");
      Audit(nullptr, c.project_id, "cluster.recover", c.id, nullptr, st, "deleting -> deleted");
      if (!st.ok())
        LogWarn("cluster.start_failed", absl::StrCat("cluster ", c.id, ": ", st.message()),
                {{"cluster_id", c.id}, {"state", c.state}});
    } else if (c.state == "available" || c.state == "inaccessible" || c.state == "degraded") {
      to_open.push_back(c);
    }
  }
  // Each open is one KMS round trip plus RocksDB recovery: open several at once, so a server
  // with many clusters is back in seconds, not minutes.
  std::atomic<size_t> next{0};
  // A cluster that cannot be opened or recorded stays as it is and is reported; the server
  // serves the others and the storage check retries it.
  auto worker = [&] {
    for (size_t i = next++; i < to_open.size(); i = next++) {
      absl::Status st = StartCluster(to_open[i]);
      if (!st.ok()) {
        LogWarn("cluster.start_failed", absl::StrCat("cluster ", to_open[i].id, ": ", st.message()),
                {{"cluster_id", to_open[i].id}});
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < std::min<size_t>(8, to_open.size()); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return absl::OkStatus();
}

absl::Status ControlPlane::StartCluster(Cluster& c) {
  Claim claim = TryClaimCluster(c.id);
  int old_port = c.port;
  absl::Status st = OpenCluster(c, /*create=*/false);
  if (st.ok()) {
    if (c.state != "available" || c.port != old_port) {
      RETURN_IF_ERROR(Transition(c, "available", "", "", c.port));
    }
    RecordProtection(c.id, /*wrapped_now=*/false);
    return absl::OkStatus();
  }
  LogWarn("cluster.open_failed", std::string(st.message()), {{"cluster_id", c.id}});
  OpenFailure why = ClassifyOpenFailure(c.id, st);
  // The endpoint keeps its port and tells clients why, instead of refusing connections.
  auto sealed = runtime_.Seal(c.id, c.password_sha256_hex, c.port,
                              absl::StrCat("cluster ", c.id, " is inaccessible: ", why.message),
                              DurabilityOf(c));
  if (c.state != "inaccessible" || c.state_message != why.message || c.state_cause != why.cause) {
    absl::Status st_moved = Transition(c, "inaccessible", why.message, why.cause,
                                       sealed.ok() ? std::optional<int>(*sealed) : std::nullopt);
    if (!st_moved.ok()) {
      NoteUnrecorded(st_moved, c, "inaccessible", why.message, why.cause);
      return st_moved;
    }
    if (why.cause != "key") {
      Audit(nullptr, c.project_id, "cluster.storage_failed", c.id, nullptr,
            absl::Status(st.code(), why.message), "");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Cluster> ControlPlane::PauseCluster(const User& actor, const std::string& id) {
  ASSIGN_OR_RETURN(Claimed held, ClaimForChange(actor, id, Need::kMember, "cluster.pause"));
  Cluster& c = held.cluster;
  const std::optional<EncryptionKey>& key = held.key;
  if (!CanTransition(c.state, "paused")) return IllegalTransition(c, "pause");
  runtime_.Close(c.id);  // store closed, its keys wiped from memory
  absl::Status st = Transition(c, "paused", "");
  Audit(&actor, c.project_id, "cluster.pause", c.id, key ? &*key : nullptr, st);
  RETURN_IF_ERROR(st);
  return c;
}

absl::StatusOr<Cluster> ControlPlane::ResumeCluster(const User& actor, const std::string& id) {
  ASSIGN_OR_RETURN(Claimed held, ClaimForChange(actor, id, Need::kMember, "cluster.resume"));
  Cluster& c = held.cluster;
  const std::optional<EncryptionKey>& key = held.key;
  // creating → available belongs to creation itself, not to resume.
  if (c.state == "creating" || !CanTransition(c.state, "available")) {
    return IllegalTransition(c, "resume");
  }
  // A degraded cluster is open read-only: resuming reopens it, which retries the recovery.
  if (c.state == "degraded") runtime_.Close(c.id);
  absl::Status st = OpenCluster(c, /*create=*/false);
  if (!st.ok()) {
    // Stays where it was; the message says why (disabled key, missing permission, damaged
    // files, a full disk, …) and what to do.
    Audit(&actor, c.project_id, "cluster.resume", c.id, key ? &*key : nullptr, st);
    OpenFailure why = ClassifyOpenFailure(c.id, st);
    if (c.state == "degraded") {
      // Closed now: it cannot stay degraded (open read-only), it is inaccessible.
      auto sealed = runtime_.Seal(c.id, c.password_sha256_hex, c.port,
                                  absl::StrCat("cluster ", c.id, " is inaccessible: ", why.message),
                                  DurabilityOf(c));
      Transition(c, "inaccessible", why.message, why.cause,
                 sealed.ok() ? std::optional<int>(*sealed) : std::nullopt)
          .IgnoreError();
    }
    if (why.cause == "key") {
      return absl::FailedPreconditionError(absl::StrCat(
          st.message(), "; the cluster stays ", c.state, " — fix the key, then resume again"));
    }
    return absl::FailedPreconditionError(absl::StrCat(why.message, "; the cluster is ", c.state));
  }
  st = Transition(c, "available", "", "", c.port);
  if (!st.ok()) runtime_.Close(c.id);
  Audit(&actor, c.project_id, "cluster.resume", c.id, key ? &*key : nullptr, st);
  RETURN_IF_ERROR(st);
  RecordProtection(c.id, /*wrapped_now=*/false);
  return c;
}

absl::StatusOr<Cluster> ControlPlane::DeleteCluster(const User& actor, const std::string& id) {
  ASSIGN_OR_RETURN(ClusterDeleted d, DeleteCluster(actor, id, /*with_backups=*/false));
  return d.cluster;
}

absl::StatusOr<ControlPlane::ClusterDeleted> ControlPlane::DeleteCluster(const User& actor,
                                                                         const std::string& id,
                                                                         bool with_backups) {
  ASSIGN_OR_RETURN(Claimed held, ClaimForChange(actor, id, Need::kOwner, "cluster.delete"));
  Cluster& c = held.cluster;
  const std::optional<EncryptionKey>& key = held.key;
  if (!CanTransition(c.state, "deleting")) return IllegalTransition(c, "delete");
  ClusterDeleted out;
  // Backups go first: when one cannot be deleted the cluster is still whole and the request
  // can be repeated.
  if (with_backups) {
    ASSIGN_OR_RETURN(out.backups_deleted, DeleteClusterBackups(actor, c));
  } else {
    ASSIGN_OR_RETURN(out.backups_kept, CountClusterBackups(c.id));
  }
  RETURN_IF_ERROR(Transition(c, "deleting", ""));
  absl::Status st = runtime_.Shred(c.id);  // wrapped keys destroyed first, then the files
  if (st.ok()) st = Transition(c, "deleted", "", "", 0);
  Audit(&actor, c.project_id, "cluster.delete", c.id, key ? &*key : nullptr, st,
        absl::StrCat("crypto-shredded; backups ",
                     with_backups ? absl::StrCat(out.backups_deleted, " deleted")
                                  : absl::StrCat(out.backups_kept, " kept")));
  RETURN_IF_ERROR(st);
  out.cluster = c;
  out.backups_message = BackupsAfterDelete(c, out.backups_kept, out.backups_deleted);
  return out;
}

}  // namespace keyward
