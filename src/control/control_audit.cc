// The audit trail: every key and cluster operation, every change to projects, members and
// tokens, and every refusal, with the actor as an id and a name (never a token).
#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {

void ControlPlane::Audit(const User* actor, const std::string& project_id,
                         const std::string& action, const std::string& target,
                         const EncryptionKey* key, const absl::Status& result,
                         const std::string& detail, const std::string& key_version) {
  AuditEvent e;
  e.project_id = project_id;
  e.at_ms = now_ms_();
  e.actor = actor ? absl::StrCat(actor->id, " (", actor->name, ")") : "keyward (system)";
  e.action = action;
  e.target = target;
  if (key) e.key_id = absl::StrCat(key->id, " (", key->provider, " ", key->key_name, ")");
  e.key_version = key_version;
  e.result = result.ok() ? "success" : "failure";
  e.message = result.ok() ? detail : std::string(result.message());
  absl::Status st = metadata_.AppendAudit(e);
  if (!st.ok()) LogError("audit.write_failed", absl::StrCat("audit write failed: ", st.message()));
}

void ControlPlane::AuditSystem(const std::string& project_id, const std::string& action,
                               const std::string& target, const EncryptionKey* key,
                               const absl::Status& result, const std::string& key_version) {
  Audit(nullptr, project_id, action, target, key, result, "", key_version);
}

absl::StatusOr<std::vector<AuditEvent>> ControlPlane::ListAudit(const User& actor,
                                                                const std::string& project_id,
                                                                const AuditFilter& filter,
                                                                Page page) {
  // The organization's own events (project creation, tokens, grants) are filed under its id:
  // organization owners read them.
  if (project_id == actor.org_id && actor.org_role == "owner") {
    return metadata_.ListAudit(project_id, filter, page);
  }
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kView).status());
  return metadata_.ListAudit(project_id, filter, page);
}

}  // namespace keyward
