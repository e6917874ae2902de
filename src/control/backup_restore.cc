// ControlPlane::RestoreBackup: a backup restored as a new cluster, from the primary objects or
// the dual-region copy, staged in a directory a crash leaves for start-up recovery to remove.

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "backup/cluster_backup.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/status_macros.h"

namespace keyward {

namespace fs = std::filesystem;
using control_internal::kRestoreStagingPrefix;
using control_internal::RemoveQuietly;
using nlohmann::json;

absl::StatusOr<ControlPlane::RestoredBackup> ControlPlane::RestoreBackup(
    const User& actor, const std::string& backup_id, const std::string& name, bool from_copy) {
  RETURN_IF_ERROR(control_internal::ValidateName("cluster", name));
  ASSIGN_OR_RETURN(BackupRecord b, LoadBackup(actor, backup_id, Need::kMember, "backup.restore"));
  if (b.state != "completed") {
    return absl::FailedPreconditionError(absl::StrCat("backup ", backup_id, " is ", b.state,
                                                      "; only a completed backup can be restored"));
  }
  ASSIGN_OR_RETURN(std::optional<Cluster> source, metadata_.GetCluster(b.cluster_id));
  ASSIGN_OR_RETURN(std::optional<EncryptionKey> key, metadata_.GetKey(b.key_record_id));
  if (!source || !key) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", backup_id, ": its cluster or encryption-key record is gone"));
  }
  auto fail = [&](const absl::Status& st) {
    Audit(&actor, b.project_id, "backup.restore", backup_id, &*key, st, name, b.key_version);
    return st;
  };
  // Where to read it: the primary, then the dual-region copy (made only outside CMEK projects,
  // under the same key, authenticated the same way: a copy that was tampered with is refused
  // like a primary). The copy is only read when this server has its destination.
  BackupDestination* copy = b.copy_state == "completed" && backup_secondary_ &&
                                    backup_secondary_->Describe() == b.copy_destination
                                ? backup_secondary_
                                : nullptr;
  if (from_copy && !copy) {
    return fail(absl::FailedPreconditionError(
        b.copy_state.empty()
            ? absl::StrCat("backup ", backup_id,
                           " has no dual-region copy (its cluster's backup policy did not ask "
                           "for one); restore it without --from-copy")
        : b.copy_state != "completed"
            ? absl::StrCat("backup ", backup_id, "'s dual-region copy is ", b.copy_state,
                           ", not completed; restore it without --from-copy")
            : absl::StrCat("backup ", backup_id, "'s dual-region copy is in ", b.copy_destination,
                           ", which this server is not configured for: start it with the "
                           "--backup-secondary-dir or --backup-secondary-azure-* that names it")));
  }
  std::vector<BackupDestination*> sources;
  std::string primary_error;
  if (!from_copy) {
    absl::StatusOr<BackupDestination*> dest = BackupDestinationFor(b);
    if (dest.ok()) {
      sources.push_back(*dest);
    } else {
      primary_error = std::string(dest.status().message());
      if (!copy) return fail(dest.status());
    }
  }
  if (copy) sources.push_back(copy);
  ASSIGN_OR_RETURN(std::shared_ptr<MasterKeyProvider> provider, kms_.ProviderFor(*key));
  Cluster c;
  ASSIGN_OR_RETURN(std::string hex, RandomHex(8));
  c.id = absl::StrCat("c-", hex);
  // Verified and decrypted in full, into a directory no cluster uses, before any record exists.
  std::string staging =
      absl::StrCat(runtime_.data_dir(), "/clusters/", kRestoreStagingPrefix, c.id);
  BackupDestination* used = nullptr;
  absl::Status first;               // the first source's failure (its code is the answer's)
  std::string why = primary_error;  // every source's failure, in order
  // A mariadb restore sets the new admin password inside the restored files, so it is made first.
  ASSIGN_OR_RETURN(std::string password, RandomHex(16));
  const bool mariadb = source->engine == "mariadb";
  for (BackupDestination* from : sources) {
    auto restored =
        mariadb
            ? RestoreMariadbStaging(*from, *provider, backup_id, c.id, staging, password)
            : keyward::RestoreBackup(*from, *provider, backup_id, c.id, staging, Now(), nullptr);
    absl::Status st = restored.status();
    if (st.ok() && (restored->project_id != b.project_id || restored->cluster_id != b.cluster_id)) {
      RemoveQuietly(staging);
      st = absl::DataLossError(absl::StrCat("backup ", backup_id,
                                            "'s manifest names another cluster or project than "
                                            "its record"));
    }
    if (st.ok()) {
      used = from;
      break;
    }
    if (from != copy) primary_error = std::string(st.message());
    if (first.ok()) first = st;
    absl::StrAppend(&why, why.empty() ? "" : "; ",
                    from == copy ? absl::StrCat("the dual-region copy in ", from->Describe(),
                                                from_copy ? "" : " failed too", ": ")
                                 : "",
                    st.message());
  }
  if (!used) {
    // A backup that fails verification is a refusal about that backup (409, with the reason),
    // not a server fault: the message names the backup, file and chunk, never key bytes.
    absl::StatusCode code = first.code() == absl::StatusCode::kDataLoss
                                ? absl::StatusCode::kFailedPrecondition
                                : first.code();
    return fail(absl::Status(code, absl::StrCat("restore refused, no cluster was created: ", why)));
  }
  c.project_id = b.project_id;
  c.name = name;
  c.cloud_provider = source->cloud_provider;
  c.region = source->region;
  c.tier = source->tier;
  c.state = "creating";
  c.encryption_key_id = key->id;
  c.engine = source->engine;
  c.created_at = c.updated_at = Now();
  c.password_sha256_hex = Sha256Hex(password);
  absl::Status st = metadata_.InsertCluster(c);
  if (!st.ok()) {
    RemoveQuietly(staging);
    return fail(st);
  }
  Claim claim = TryClaimCluster(c.id);
  std::error_code ec;
  fs::rename(staging, runtime_.ClusterDir(c.id), ec);
  st = ec ? absl::InternalError(
                absl::StrCat("cannot move the restored files into place: ", ec.message()))
          : OpenCluster(c, /*create=*/false);
  if (st.ok()) st = Transition(c, "available", "", "", c.port);
  if (!st.ok()) {
    RemoveQuietly(staging);
    runtime_.Shred(c.id).IgnoreError();
    Transition(c, "failed", std::string(st.message())).IgnoreError();
    return fail(st);
  }
  RecordProtection(c.id, /*wrapped_now=*/true);
  RestoredBackup out;
  out.source = used->Describe();
  out.from_copy = used == copy;
  if (out.from_copy) out.primary_error = primary_error;
  Audit(&actor, c.project_id, "backup.restore", backup_id, &*key, absl::OkStatus(),
        absl::StrCat("restored as cluster ", c.id, " (", name, ") from ", out.source,
                     out.from_copy ? " (the dual-region copy" : "",
                     out.from_copy && !primary_error.empty()
                         ? absl::StrCat("; the primary failed: ", primary_error, ")")
                         : std::string(out.from_copy ? ")" : "")),
        b.key_version);
  ASSIGN_OR_RETURN(std::optional<Cluster> stored, metadata_.GetCluster(c.id));
  out.cluster = stored ? *stored : c;
  out.password = password;
  return out;
}

}  // namespace keyward
