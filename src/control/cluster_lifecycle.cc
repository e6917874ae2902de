// The cluster state machine of ControlPlane: start-up recovery, pause, resume, delete, and the
// actions the key health monitor takes (cut, restore, re-wrap), plus dictionary-key rotation and
// re-encryption. Every state change is a compare-and-set in the metadata store, made while this
// server holds the cluster's claim; no lock is held across a KMS call or a RocksDB open.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/control_plane.h"
#include "storage/storage_error.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

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

}  // namespace

ControlPlane::Claim::~Claim() {
  if (!cp_) return;
  std::lock_guard<std::mutex> lock(cp_->claims_mu_);
  cp_->claimed_.erase(id_);
  cp_->claims_cv_.notify_all();
}

absl::StatusOr<ControlPlane::Claimed> ControlPlane::ClaimForChange(const User& actor,
                                                                   const std::string& id, Need need,
                                                                   std::string_view action) {
  // Authorised before waiting, so nobody without the right can hold up a cluster's operations;
  // read again once claimed, so the change starts from the state as of the claim.
  RETURN_IF_ERROR(LoadCluster(actor, id, need, nullptr, action).status());
  ASSIGN_OR_RETURN(Claim claim, ClaimCluster(id));
  ASSIGN_OR_RETURN(Cluster c, LoadCluster(actor, id, need, nullptr, action));
  ASSIGN_OR_RETURN(std::optional<EncryptionKey> key, metadata_.GetKey(c.encryption_key_id));
  return Claimed{std::move(claim), std::move(c), std::move(key)};
}

absl::StatusOr<ControlPlane::Claim> ControlPlane::ClaimCluster(const std::string& id) {
  std::unique_lock<std::mutex> lock(claims_mu_);
  if (!claims_cv_.wait_for(lock, std::chrono::seconds(10),
                           [&] { return claimed_.count(id) == 0; })) {
    return absl::FailedPreconditionError(absl::StrCat("another operation on cluster ", id,
                                                      " is still running; try again in a moment"));
  }
  claimed_.insert(id);
  return Claim(this, id);
}

ControlPlane::Claim ControlPlane::TryClaimCluster(const std::string& id) {
  std::lock_guard<std::mutex> lock(claims_mu_);
  if (claimed_.count(id)) return Claim();
  claimed_.insert(id);
  return Claim(this, id);
}

void ControlPlane::SetBackgroundRunner(std::function<void(std::function<void()>)> run) {
  background_ = std::move(run);
}

ControlPlane::EndpointInfo ControlPlane::Endpoint(const Cluster& c) const {
  EndpointInfo out;
  out.tls = runtime_.tls();
  if (c.port > 0 && (c.state == "available" || c.state == "degraded")) {
    out.address = absl::StrCat(runtime_.host(), ":", c.port);
  }
  return out;
}

absl::Status ControlPlane::Transition(Cluster& c, const std::string& state,
                                      const std::string& message, const std::string& cause,
                                      std::optional<int> port) {
  ClusterTransition to{state, message, cause, port, Now()};
  ASSIGN_OR_RETURN(bool moved, metadata_.TransitionCluster(c.id, {c.state}, to));
  if (!moved) {
    ASSIGN_OR_RETURN(std::optional<Cluster> now, metadata_.GetCluster(c.id));
    return absl::FailedPreconditionError(
        absl::StrCat("cluster ", c.id, " changed meanwhile: it is ", now ? now->state : "gone",
                     ", not ", c.state, "; reload it and try again"));
  }
  {
    std::lock_guard<std::mutex> lock(unrecorded_mu_);
    unrecorded_.erase(c.id);
  }
  c.state = state;
  c.state_message = message;
  c.state_cause = cause;
  c.updated_at = to.now;
  if (port) c.port = *port;
  return absl::OkStatus();
}

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
