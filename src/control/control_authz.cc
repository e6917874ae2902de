// Who may do what: a project's role decides, an organization owner may do everything, and a
// refusal for lack of a role is audited. Fails closed.
#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "util/status_macros.h"

namespace keyward {

absl::StatusOr<Project> ControlPlane::Authorize(const User& actor, const std::string& project_id,
                                                Need need, std::string_view action,
                                                std::string_view target) {
  ASSIGN_OR_RETURN(std::optional<Project> project, metadata_.GetProject(project_id));
  if (!project || project->org_id != actor.org_id) {
    return absl::NotFoundError(absl::StrCat("project '", project_id, "' does not exist"));
  }
  if (actor.org_role == "owner") return *project;
  ASSIGN_OR_RETURN(std::string role, metadata_.ProjectRole(project_id, actor.id));
  int have = role == "project_owner"    ? 3
             : role == "project_member" ? 2
             : role == "project_viewer" ? 1
                                        : 0;
  if (have == 0)
    return absl::NotFoundError(absl::StrCat("project '", project_id, "' does not exist"));
  int want = need == Need::kOwner ? 3 : need == Need::kMember ? 2 : 1;
  if (have < want) {
    absl::Status denied = absl::PermissionDeniedError(absl::StrCat(
        "your role ", role, " in project ", project_id, " does not allow this; it needs ",
        need == Need::kOwner ? "project_owner" : "project_member", " or an organization owner"));
    AuditDenied(actor, project_id, action, target.empty() ? project_id : target, denied);
    return denied;
  }
  return *project;
}

void ControlPlane::AuditDenied(const User& actor, const std::string& project_id,
                               std::string_view action, std::string_view target,
                               const absl::Status& denied) {
  // Who tried what on which resource; the actor is the user's id and name, never a token.
  Audit(&actor, project_id, action.empty() ? "request" : std::string(action), std::string(target),
        nullptr, absl::PermissionDeniedError(absl::StrCat("denied: ", denied.message())));
}

absl::StatusOr<Cluster> ControlPlane::LoadCluster(const User& actor, const std::string& id,
                                                  Need need, Project* project,
                                                  std::string_view action) {
  ASSIGN_OR_RETURN(std::optional<Cluster> c, metadata_.GetCluster(id));
  if (!c) return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
  auto p = Authorize(actor, c->project_id, need, action, id);
  if (!p.ok()) {
    if (absl::IsNotFound(p.status()))
      return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
    return p.status();
  }
  if (project) *project = *p;
  return *c;
}

}  // namespace keyward
