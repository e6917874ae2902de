// The control plane's side of storage health: repair of damaged clusters, and the periodic
// storage check that moves clusters between available, degraded and inaccessible as their
// storage fails and recovers (see ControlPlane::CheckStorage).

#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "storage/storage_error.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

bool DiskFull(const absl::Status& st) { return absl::IsResourceExhausted(st); }

// Free space worth a reopen of a cluster that stopped on a full disk: room for its memtables to
// be flushed (3 × 8 MiB write buffers) with some to spare.
constexpr uint64_t kReopenFreeBytes = 32ull << 20;

}  // namespace

ControlPlane::OpenFailure ControlPlane::ClassifyOpenFailure(const std::string& id,
                                                            const absl::Status& st) {
  std::string what(st.message());
  if (!IsStorageError(st)) return {"key", what};
  switch (st.code()) {
    case absl::StatusCode::kDataLoss:
      // Damaged files. The key dictionary cannot be rebuilt; the database can, to its last
      // consistent point.
      if (what.find("key dictionary") != std::string::npos) {
        return {"corruption",
                absl::StrCat("storage corruption: ", what,
                             "; repair cannot rebuild the key dictionary (it holds the data keys): "
                             "restore keys.dict from a backup of this cluster, then resume it")};
      }
      return {"corruption",
              absl::StrCat("storage corruption: ", what,
                           "; nothing was dropped yet. `keyward cluster repair ", id,
                           " --accept-data-loss` recovers to the last consistent point and "
                           "reports what it drops (or restore the cluster from a backup)")};
    case absl::StatusCode::kResourceExhausted:
      return {"storage", absl::StrCat(what,
                                      "; free space on the data volume: the cluster reopens by "
                                      "itself at the next storage check")};
    default:
      return {"storage", absl::StrCat("storage error: ", what,
                                      "; retried at every storage check (see the server log)")};
  }
}

absl::StatusOr<ControlPlane::Repaired> ControlPlane::RepairCluster(const User& actor,
                                                                   const std::string& id,
                                                                   bool accept_data_loss) {
  ASSIGN_OR_RETURN(Claimed held, ClaimForChange(actor, id, Need::kOwner, "cluster.repair"));
  Cluster& c = held.cluster;
  const std::optional<EncryptionKey>& key = held.key;
  bool damaged = (c.state == "inaccessible" && c.state_cause == "corruption") ||
                 (c.state == "degraded" && c.state_cause == "corruption");
  if (!damaged) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster ", id, " is ", c.state,
        c.state_cause.empty() ? "" : absl::StrCat(" (cause: ", c.state_cause, ")"),
        "; repair is only for a cluster whose files are damaged (inaccessible or degraded with "
        "cause corruption)"));
  }
  if (!accept_data_loss) {
    return absl::FailedPreconditionError(absl::StrCat(
        "repair of cluster ", id,
        " drops every write after the damage (acknowledged writes included) and any damaged "
        "file's keys, and cannot be undone: it recovers to the last consistent point and reports "
        "what it dropped. Restore from a backup instead to keep them, or run `keyward cluster "
        "repair ",
        id, " --accept-data-loss` (REST: {\"accept_data_loss\": true})"));
  }
  if (!key) return absl::DataLossError(absl::StrCat("cluster ", id, " has no key record"));
  ASSIGN_OR_RETURN(std::shared_ptr<MasterKeyProvider> provider, kms_.ProviderFor(*key));
  // Closed (a degraded cluster is open read-only), the endpoint kept: clients hear why.
  auto sealed = runtime_.Seal(id, c.password_sha256_hex, c.port,
                              absl::StrCat("cluster ", id, " is being repaired"), DurabilityOf(c));
  if (sealed.ok()) c.port = *sealed;
  auto report = runtime_.Repair(id, provider);
  if (!report.ok()) {
    std::string message = absl::StrCat("repair failed: ", report.status().message());
    if (c.state == "degraded") {
      Transition(c, "inaccessible", message, "corruption", c.port).IgnoreError();
    }
    runtime_
        .Seal(id, c.password_sha256_hex, c.port,
              absl::StrCat("cluster ", id, " is inaccessible: ", message), DurabilityOf(c))
        .IgnoreError();
    Audit(&actor, c.project_id, "cluster.repair", id, &*key, absl::DataLossError(message));
    return Reworded(report.status(), message);
  }
  std::string summary = report->Summary();
  LogWarn("cluster.repaired", absl::StrCat("cluster ", id, " repaired: ", summary),
          {{"cluster_id", id}});
  absl::Status st = OpenCluster(c, /*create=*/false);
  if (st.ok()) {
    st = Transition(c, "available", "", "", c.port);
    if (!st.ok()) runtime_.Close(id);
  } else {
    OpenFailure why = ClassifyOpenFailure(id, st);
    runtime_
        .Seal(id, c.password_sha256_hex, c.port,
              absl::StrCat("cluster ", id, " is inaccessible: ", why.message), DurabilityOf(c))
        .IgnoreError();
    if (c.state == "degraded") Transition(c, "inaccessible", why.message, why.cause).IgnoreError();
    st = Reworded(st, absl::StrCat("repaired (", summary,
                                   ") but the cluster still does not open: ", why.message));
  }
  // The audit names what was dropped, success or not: it is gone either way.
  Audit(&actor, c.project_id, "cluster.repair", id, &*key, st,
        absl::StrCat("--accept-data-loss: ", summary));
  RETURN_IF_ERROR(st);
  RecordProtection(id, /*wrapped_now=*/false);
  ASSIGN_OR_RETURN(std::optional<Cluster> stored, metadata_.GetCluster(id));
  return Repaired{stored ? *stored : c, *std::move(report)};
}

void ControlPlane::NoteUnrecorded(const absl::Status& failed, const Cluster& c,
                                  const std::string& state, const std::string& message,
                                  const std::string& cause) {
  // A compare-and-set that lost to another change is not a failed write: nothing to show.
  if (failed.ok() || absl::IsFailedPrecondition(failed)) return;
  std::lock_guard<std::mutex> lock(unrecorded_mu_);
  unrecorded_[c.id] = ClusterTransition{state, message, cause, std::nullopt, Now()};
}

Cluster ControlPlane::WithUnrecorded(Cluster c) {
  std::lock_guard<std::mutex> lock(unrecorded_mu_);
  auto it = unrecorded_.find(c.id);
  if (it == unrecorded_.end()) return c;
  c.state = it->second.state;
  c.state_message =
      absl::StrCat(it->second.message, " (not yet recorded: the metadata write failed too)");
  c.state_cause = it->second.cause;
  c.updated_at = it->second.now;
  return c;
}

void ControlPlane::CheckStorage() {
  auto clusters = metadata_.ListClusters("", {0, 1 << 30});
  if (!clusters.ok()) return;
  for (const Cluster& c : *clusters) {
    bool open = runtime_.IsOpen(c.id);
    if ((c.state == "available" || c.state == "degraded") && open &&
        !runtime_.ServingError(c.id).ok()) {
      CloseStoppedEngine(c.id);  // inaccessible (storage): reopened by the retry below
    } else if ((c.state == "available" || c.state == "degraded") && open) {
      CheckOpenCluster(c.id);
    } else if ((c.state == "inaccessible" && c.state_cause == "storage") ||
               ((c.state == "available" || c.state == "degraded") && !open)) {
      // The second kind: recorded open but not open here — its failure could not be recorded
      // (a full disk refuses the metadata write too).
      RetryStorageFailure(c);
    }
  }
}

void ControlPlane::CheckOpenCluster(const std::string& id) {
  Claim claim = TryClaimCluster(id);
  if (!claim.held()) return;  // busy: the next check looks again
  auto h = runtime_.Get(id);
  if (!h) return;
  auto stored = metadata_.GetCluster(id);
  if (!stored.ok() || !*stored) return;
  Cluster c = **stored;  // compare-and-set from the stored state
  // Decisions go by the state the API shows, which may be one the metadata could not record.
  const std::string shown = WithUnrecorded(c).state;
  absl::Status stopped = h->store->WritesStoppedBy();
  // A full disk is the one stop that may clear by itself: try to leave read-only mode. RocksDB
  // resumes after a failed flush; after a failed WAL write it will not (the error is fatal for
  // that open database), so once there is room again the cluster is reopened.
  // Only with room again (else a resume "succeeds" and the next write fails: the state would
  // flap while writes keep failing).
  if (DiskFull(stopped) && shown == "degraded" &&
      runtime_.FreeBytes().value_or(0) >= kReopenFreeBytes) {
    if (h->store->Resume().ok()) {
      stopped = {};
    } else {
      h.reset();
      ReopenAfterDiskFull(c);
      return;
    }
  }
  if (!stopped.ok() && shown == "available") {
    bool corrupt = absl::IsDataLoss(stopped);
    std::string message =
        DiskFull(stopped)
            ? absl::StrCat("read-only: ", stopped.message(),
                           "; reads are served, writes are refused until space is freed on the "
                           "data volume (checked again at every storage check)")
            : absl::StrCat("read-only: ", stopped.message(),
                           corrupt
                               ? absl::StrCat("; reads of undamaged data are served, writes are "
                                              "refused. `keyward cluster repair ",
                                              id,
                                              " --accept-data-loss` drops the damaged data and "
                                              "reopens it (or restore from a backup)")
                               : absl::StrCat("; reads are served, writes are refused. `keyward "
                                              "cluster resume ",
                                              id, "` reopens it once the cause is fixed"));
    std::string cause = corrupt ? "corruption" : "storage";
    absl::Status st = Transition(c, "degraded", message, cause);
    NoteUnrecorded(st, c, "degraded", message, cause);  // a full disk refuses the write too
    Audit(nullptr, c.project_id, "cluster.degraded", id, nullptr, st, message);
    LogWarn("cluster.degraded", absl::StrCat("cluster ", id, " degraded: ", message),
            {{"cluster_id", id}});
  } else if (stopped.ok() && shown == "degraded") {
    absl::Status st = Transition(c, "available", "", "");
    Audit(nullptr, c.project_id, "cluster.storage_recovered", id, nullptr, st,
          "writes work again; degraded -> available");
  }
}

void ControlPlane::CloseStoppedEngine(const std::string& id) {
  Claim claim = TryClaimCluster(id);
  if (!claim.held()) return;
  auto stored = metadata_.GetCluster(id);
  absl::Status down = runtime_.ServingError(id);
  if (!stored.ok() || !*stored || down.ok()) return;
  Cluster c = **stored;
  OpenFailure why = ClassifyOpenFailure(id, down);
  runtime_
      .Seal(id, c.password_sha256_hex, c.port,
            absl::StrCat("cluster ", id, " is inaccessible: ", why.message), DurabilityOf(c))
      .IgnoreError();
  absl::Status st = Transition(c, "inaccessible", why.message, why.cause);
  NoteUnrecorded(st, c, "inaccessible", why.message, why.cause);
  Audit(nullptr, c.project_id, "cluster.storage_failed", id, nullptr,
        absl::Status(down.code(), why.message), "");
  LogWarn("cluster.inaccessible", absl::StrCat("cluster ", id, " made inaccessible: ", why.message),
          {{"cluster_id", id}});
}

void ControlPlane::ReopenAfterDiskFull(Cluster& c) {
  // Sealed, not closed: connections stay and hear why for the moment the reopen takes.
  auto sealed = runtime_.Seal(c.id, c.password_sha256_hex, c.port,
                              absl::StrCat("cluster ", c.id, " is reopening after its disk filled"),
                              DurabilityOf(c));
  if (sealed.ok()) c.port = *sealed;
  absl::Status st = OpenCluster(c, /*create=*/false);
  if (st.ok()) st = Transition(c, "available", "", "", c.port);
  if (st.ok()) {
    Audit(nullptr, c.project_id, "cluster.storage_recovered", c.id, nullptr, st,
          "space freed; reopened; degraded -> available");
    return;
  }
  OpenFailure why = ClassifyOpenFailure(c.id, st);
  runtime_.Close(c.id);
  runtime_
      .Seal(c.id, c.password_sha256_hex, c.port,
            absl::StrCat("cluster ", c.id, " is inaccessible: ", why.message), DurabilityOf(c))
      .IgnoreError();
  NoteUnrecorded(Transition(c, "inaccessible", why.message, why.cause), c, "inaccessible",
                 why.message, why.cause);
}

void ControlPlane::RetryStorageFailure(const Cluster& stale) {
  Claim claim = TryClaimCluster(stale.id);
  if (!claim.held()) return;
  auto stored = metadata_.GetCluster(stale.id);
  if (!stored.ok() || !*stored) return;
  Cluster c = **stored;
  bool unrecorded = (c.state == "available" || c.state == "degraded") && !runtime_.IsOpen(c.id);
  if (!unrecorded && (c.state != "inaccessible" || c.state_cause != "storage")) return;
  absl::Status st = OpenCluster(c, /*create=*/false);
  if (!st.ok()) {
    OpenFailure why = ClassifyOpenFailure(c.id, st);
    if (c.state != "inaccessible" || why.message != c.state_message || why.cause != c.state_cause) {
      NoteUnrecorded(Transition(c, "inaccessible", why.message, why.cause), c, "inaccessible",
                     why.message, why.cause);
    }
    return;
  }
  st = Transition(c, "available", "", "", c.port);
  if (!st.ok()) {
    runtime_.Close(c.id);
    runtime_
        .Seal(c.id, c.password_sha256_hex, c.port,
              absl::StrCat("cluster ", c.id, " is inaccessible: ", c.state_message),
              DurabilityOf(c))
        .IgnoreError();
    return;
  }
  Audit(nullptr, c.project_id, "cluster.storage_recovered", c.id, nullptr, st,
        "the storage works again; reopened");
  RecordProtection(c.id, /*wrapped_now=*/false);
}

}  // namespace keyward
