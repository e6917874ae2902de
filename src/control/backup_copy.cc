// ControlPlane's dual-region backup copies: every completed backup of a cluster whose backup
// policy has dual_region enabled is copied, object by object (manifest last, so an interrupted
// copy is never a restorable backup), to the server's secondary destination
// (serve --backup-secondary-dir, or a Blob container: --backup-secondary-azure-*). Never for a
// CMEK-enabled project: the policy refuses dual_region there, and the copy checks the rule again
// and fails closed — a project it cannot read counts as CMEK. The copy's state is the backup's
// `copy` (backup_records.h).

#include "absl/strings/str_cat.h"
#include "backup/cluster_backup.h"
#include "control/control_plane.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

bool WantsDualRegion(const std::string& policy_json) {
  json p = json::parse(policy_json, nullptr, false);
  if (!p.is_object() || !p.contains("dual_region") || !p["dual_region"].is_object()) return false;
  const json& enabled = p["dual_region"]["enabled"];
  return enabled.is_boolean() && enabled.get<bool>();
}

// The backup's objects from `from` to `to`: the shared SST objects it holds (an incremental
// backup reuses them) and its own data first, synced once, then the manifest.
absl::Status CopyObjects(BackupDestination& from, BackupDestination& to, const std::string& id,
                         const std::vector<std::string>& shared) {
  std::string data;
  for (const std::string& object : shared) {
    ASSIGN_OR_RETURN(std::vector<std::string> chunks, from.List(object + "/"));
    for (const std::string& name : chunks) {
      RETURN_IF_ERROR(from.GetInto(name, &data));
      RETURN_IF_ERROR(to.PutDeferred(name, data));
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names, from.List(id + "/"));
  const std::string manifest = BackupManifestObject(id);
  if (std::find(names.begin(), names.end(), manifest) == names.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", id, " has no manifest in ", from.Describe()));
  }
  for (const std::string& name : names) {
    if (name == manifest) continue;
    RETURN_IF_ERROR(from.GetInto(name, &data));
    RETURN_IF_ERROR(to.PutDeferred(name, data));
  }
  RETURN_IF_ERROR(to.SyncPuts());
  RETURN_IF_ERROR(from.GetInto(manifest, &data));
  return to.Put(manifest, data);
}

}  // namespace

void ControlPlane::SetBackupSecondary(BackupDestination* destination) {
  backup_secondary_ = destination;
}

bool ControlPlane::StartDualRegionCopy(const BackupRecord& b) {
  if (!backup_secondary_ || !backups_) return false;
  auto cluster = metadata_.GetCluster(b.cluster_id);
  if (!cluster.ok() || !*cluster || !WantsDualRegion((*cluster)->backup_policy_json)) return false;
  const std::string dest = backup_secondary_->Describe();
  auto project = metadata_.GetProject(b.project_id);
  if (!project.ok() || !*project || (*project)->cmek_enabled) {
    std::optional<EncryptionKey> key;
    if (auto k = metadata_.GetKey(b.key_record_id); k.ok()) key = *k;
    absl::Status refused = absl::FailedPreconditionError(absl::StrCat(
        "no dual-region copy of backup ", b.id, ": ",
        project.ok() && *project ? "dual-region backup is not supported in CMEK-enabled projects"
                                 : "its project could not be read, so the CMEK rule could not "
                                   "be checked",
        "; the backup stays in ", b.destination, " only"));
    backups_->SetCopy(b.id, dest, "refused", std::string(refused.message())).IgnoreError();
    Audit(nullptr, b.project_id, "backup.copy", b.id, key ? &*key : nullptr, refused, dest,
          b.key_version);
    return false;
  }
  return backups_->SetCopy(b.id, dest, "copying", "").ok();
}

void ControlPlane::CopyBackupIfDualRegion(const BackupRecord& b) {
  const std::string dest = backup_secondary_->Describe();
  std::optional<EncryptionKey> key;
  if (auto k = metadata_.GetKey(b.key_record_id); k.ok()) key = *k;
  auto from = BackupDestinationFor(b);
  auto shared = backups_->FileObjectsOf(b.id);
  absl::Status st = !from.ok()     ? from.status()
                    : !shared.ok() ? shared.status()
                                   : CopyObjects(**from, *backup_secondary_, b.id, *shared);
  if (!st.ok()) DeleteBackupObjects(*backup_secondary_, b.id).IgnoreError();
  // A delete that came while the copy was being recorded or made saw no copy to delete: the
  // copy must not outlive its backup (manifest first, so it is never restorable).
  if (auto still = backups_->Get(b.id); st.ok() && still.ok() && !*still) {
    DeleteBackupObjects(*backup_secondary_, b.id).IgnoreError();
    backups_->DeleteCopy(b.id).IgnoreError();
    Audit(nullptr, b.project_id, "backup.copy", b.id, key ? &*key : nullptr,
          absl::AbortedError("the backup was deleted while it was copied; the copy was removed"),
          dest, b.key_version);
    return;
  }
  backups_
      ->SetCopy(b.id, dest, st.ok() ? "completed" : "failed",
                st.ok() ? "" : absl::StrCat("copy to ", dest, " failed: ", st.message()))
      .IgnoreError();
  Audit(nullptr, b.project_id, "backup.copy", b.id, key ? &*key : nullptr, st, dest, b.key_version);
}

absl::Status ControlPlane::DeleteBackupCopy(const BackupRecord& b) {
  BackupRecord with = b;
  RETURN_IF_ERROR(backups_->LoadCopy(&with));
  if (with.copy_state.empty()) return absl::OkStatus();
  if (with.copy_state == "copying") {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", b.id,
                     "'s dual-region copy is still being made; delete it once the copy has "
                     "finished (keyward backup get ",
                     b.id, ")"));
  }
  if (backup_secondary_ && backup_secondary_->Describe() == with.copy_destination) {
    RETURN_IF_ERROR(DeleteBackupObjects(*backup_secondary_, b.id));
  } else if (with.copy_state == "completed") {
    return absl::FailedPreconditionError(absl::StrCat(
        "backup ", b.id, " has a copy in ", with.copy_destination,
        ", which this server is not configured for: start it with the --backup-secondary-dir "
        "or --backup-secondary-azure-* that names it, so the copy is deleted too"));
  }
  return backups_->DeleteCopy(b.id);
}

void ControlPlane::RecoverBackupCopies() {
  if (!backups_) return;
  auto failed = backups_->FailAllCopying(
      "the copy was interrupted by a server restart; its objects were removed");
  if (!failed.ok()) return;
  for (const auto& [id, dest] : *failed) {
    if (backup_secondary_ && backup_secondary_->Describe() == dest) {
      DeleteBackupObjects(*backup_secondary_, id).IgnoreError();
    }
  }
}

}  // namespace keyward
