// Changing and removing encryption-key records (ControlPlane::UpdateKey, DeleteKey): a record
// with a typo, or one that failed its test, can be fixed or dropped — but only while no cluster
// needs it, a rule the metadata store checks in the same transaction as the change.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/control_plane.h"
#include "control/key_settings.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

// The service's own key (escrow) of a project without CMEK, not one the customer manages.
bool IsServiceKey(const EncryptionKey& key) {
  const KmsProviderModule* m = KmsProviderRegistry::Global().Find(key.provider);
  return m != nullptr && !m->customer_managed();
}

absl::Status EscrowIsFixed(const EncryptionKey& key) {
  return absl::FailedPreconditionError(absl::StrCat(
      "encryption key ", key.id, " is the service's escrow key of project ", key.project_id,
      ", which was created without CMEK; it cannot be changed or deleted. For a key you manage, "
      "create a project with cmek_enabled=true and add its keys there"));
}

absl::Status InUse(const EncryptionKey& key, const std::vector<Cluster>& users,
                   const std::string& verb) {
  std::vector<std::string> names;
  for (const Cluster& c : users)
    names.push_back(absl::StrCat(c.name, " (", c.id, ", ", c.state, ")"));
  return absl::FailedPreconditionError(absl::StrCat(
      "encryption key ", key.id, " (", key.provider, "/", key.region, ") is used by cluster",
      users.size() == 1 ? " " : "s ", absl::StrJoin(names, ", "), "; it cannot be ", verb,
      " while a cluster that is not deleted uses it. Delete ",
      users.size() == 1 ? "that cluster" : "those clusters", " first: keyward cluster delete ",
      users.front().id));
}

}  // namespace

absl::StatusOr<EncryptionKey> ControlPlane::UpdateKey(const User& actor,
                                                      const std::string& project_id,
                                                      const std::string& key_id,
                                                      const KeyRequest& change) {
  RETURN_IF_ERROR(
      Authorize(actor, project_id, Need::kOwner, "encryption_key.update", key_id).status());
  ASSIGN_OR_RETURN(EncryptionKey key, GetKey(actor, project_id, key_id));
  if (IsServiceKey(key)) return EscrowIsFixed(key);
  std::string create =
      absl::StrCat("create a new key record (keyward key create --project ", project_id,
                   " --provider … --region …) and delete this one "
                   "(keyward key delete --project ",
                   project_id, " ", key.id, ")");
  if (!change.provider.empty() && change.provider != key.provider) {
    return absl::InvalidArgumentError(absl::StrCat("the provider of key record ", key.id, " (",
                                                   key.provider, ") cannot change; ", create));
  }
  if (!change.region.empty() && change.region != key.region) {
    return absl::InvalidArgumentError(absl::StrCat("the region of key record ", key.id, " (",
                                                   key.region, ") cannot change; ", create));
  }
  ASSIGN_OR_RETURN(KeySettings settings,
                   ChangeKeySettings(key, change.provider_config, change.config_field));
  EncryptionKey next = key;
  next.key_name = settings.key_name;
  next.config_json = settings.config.dump();
  next.state = "pending";
  next.status_message = absl::StrCat(
      "settings changed: set up the key as the instructions show, then test it again: keyward key "
      "test --project ",
      project_id, " ", key.id);
  next.updated_at = Now();
  next.last_check_at = 0;
  next.last_check_error.clear();
  next.current_version.clear();
  ASSIGN_OR_RETURN(std::vector<Cluster> users, metadata_.ChangeKeySettingsIfUnused(next));
  absl::Status st = users.empty() ? absl::OkStatus() : InUse(key, users, "changed");
  Audit(&actor, project_id, "encryption_key.update", key.id, &next, st,
        absl::StrCat(key.key_name, " ", key.config_json, " -> ", next.key_name, " ",
                     next.config_json));
  RETURN_IF_ERROR(st);
  return next;
}

absl::StatusOr<EncryptionKey> ControlPlane::DeleteKey(const User& actor,
                                                      const std::string& project_id,
                                                      const std::string& key_id) {
  RETURN_IF_ERROR(
      Authorize(actor, project_id, Need::kOwner, "encryption_key.delete", key_id).status());
  ASSIGN_OR_RETURN(EncryptionKey key, GetKey(actor, project_id, key_id));
  if (IsServiceKey(key)) return EscrowIsFixed(key);
  ASSIGN_OR_RETURN(std::vector<Cluster> users, metadata_.DeleteKeyIfUnused(key.id));
  absl::Status st = users.empty() ? absl::OkStatus() : InUse(key, users, "deleted");
  Audit(
      &actor, project_id, "encryption_key.delete", key.id, &key, st,
      absl::StrCat("record removed; ", key.provider, "/", key.region, " can get a new key record"));
  RETURN_IF_ERROR(st);
  return key;
}

}  // namespace keyward
