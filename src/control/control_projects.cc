// Projects: creation (organization owners and project_creators; CMEK chosen here, once),
// listing, renaming, and the PATCH rules (CMEK never changes), each refusal audited.
#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "kms/escrow/escrow_module.h"
#include "util/status_macros.h"

namespace keyward {

using control_internal::NewId;
using control_internal::ValidateName;
using control_internal::ValidateRegion;

absl::StatusOr<Project> ControlPlane::CreateProject(const User& actor, const std::string& name,
                                                    bool cmek) {
  // Roles first, failing closed: only an organization owner or a project_creator creates
  // projects (a viewer elsewhere could otherwise make one and be its owner).
  if (actor.org_role != "owner" && !actor.project_creator) {
    absl::Status denied = absl::PermissionDeniedError(
        "creating a project needs the organization owner role or the organization-level "
        "project_creator role; ask an organization owner to create it or to grant you "
        "project_creator");
    AuditDenied(actor, actor.org_id, "project.create", name, denied);
    return denied;
  }
  RETURN_IF_ERROR(ValidateName("project", name));
  if (cmek && actor.org_role != "owner") {
    absl::Status denied = absl::PermissionDeniedError(
        "only an organization owner can create a CMEK-enabled project; ask an owner, or create "
        "the project with cmek_enabled=false");
    // No project exists yet: the event is the organization's (project_id = the org id).
    AuditDenied(actor, actor.org_id, "project.create", name, denied);
    return denied;
  }
  Project p;
  ASSIGN_OR_RETURN(p.id, NewId("p-"));
  p.org_id = actor.org_id;
  p.name = name;
  p.cmek_enabled = cmek;
  p.created_at = Now();
  std::optional<EncryptionKey> escrow;
  if (!cmek) {
    // Projects without CMEK encrypt under the service's escrow key, recorded like any key.
    EncryptionKey k;
    ASSIGN_OR_RETURN(k.id, NewId("k-"));
    k.project_id = p.id;
    k.provider = kEscrowProviderName;
    k.region = "*";
    k.state = "active";
    k.key_name = "escrow";
    k.config_json = "{}";
    k.status_message = "the service's escrow key";
    k.created_at = k.updated_at = p.created_at;
    escrow = k;
  }
  absl::Status st = metadata_.CreateProject(p, actor.id, escrow);
  Audit(&actor, p.id, "project.create", p.id, nullptr, st,
        cmek ? "cmek_enabled=true" : "cmek_enabled=false");
  RETURN_IF_ERROR(st);
  return p;
}

absl::StatusOr<std::vector<Project>> ControlPlane::ListProjects(const User& actor, Page page) {
  std::optional<std::string> member;
  if (actor.org_role != "owner") member = actor.id;
  return metadata_.ListProjects(actor.org_id, member, page);
}

absl::StatusOr<Project> ControlPlane::GetProject(const User& actor, const std::string& id) {
  return Authorize(actor, id, Need::kView);
}

absl::StatusOr<Project> ControlPlane::RenameProject(const User& actor, const std::string& id,
                                                    const std::string& name) {
  RETURN_IF_ERROR(ValidateName("project", name));
  ASSIGN_OR_RETURN(Project p, Authorize(actor, id, Need::kOwner, "project.rename"));
  absl::Status st = metadata_.RenameProject(id, name);
  Audit(&actor, id, "project.rename", id, nullptr, st, absl::StrCat(p.name, " -> ", name));
  RETURN_IF_ERROR(st);
  p.name = name;
  return p;
}

absl::StatusOr<Project> ControlPlane::UpdateProject(const User& actor, const std::string& id,
                                                    const ProjectChange& change) {
  ASSIGN_OR_RETURN(Project p, Authorize(actor, id, Need::kView, "project.update"));
  if (change.cmek_enabled && *change.cmek_enabled != p.cmek_enabled) {
    // The rule is the control plane's, so the API, the CLI and the console all meet it, and a
    // refusal is on the project's record like any other.
    absl::Status refused = absl::FailedPreconditionError(
        p.cmek_enabled ? "CMEK cannot be turned off for a project once it is created; its data "
                         "stays under the customer's key"
                       : "CMEK cannot be enabled for an existing project; create a new project "
                         "with cmek_enabled=true and create its clusters there");
    Audit(&actor, id, "project.update", id, nullptr, refused);
    return refused;
  }
  if (!change.name) return p;
  return RenameProject(actor, id, *change.name);
}

}  // namespace keyward
