// The control plane's core: construction, the first start (organization, owner, default
// project) and authentication. The rest is split by area: control_authz.cc (who may do what),
// control_audit.cc, control_projects.cc, accounts.cc (members, tokens), control_keys.cc,
// key_records.cc, control_clusters.cc, cluster_lifecycle.cc, cluster_storage.cc, backup_*.cc.
#include "control/control_plane.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "control/control_plane_internal.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/clock.h"
#include "util/status_macros.h"

namespace keyward {

namespace control_internal {

absl::Status ValidateName(const std::string& what, const std::string& name) {
  static const std::regex kName("^[a-z0-9][a-z0-9-]{0,62}$");
  if (!std::regex_match(name, kName)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " name must be 1-63 characters of a-z, 0-9 and '-', not starting with '-'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRegion(const std::string& region) {
  static const std::regex kRegion("^[a-z0-9][a-z0-9-]{1,40}$");
  if (!std::regex_match(region, kRegion)) {
    return absl::InvalidArgumentError(
        "region must be a cloud region name such as eastus or us-east-1 (a-z, 0-9, '-')");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NewId(const char* prefix) {
  ASSIGN_OR_RETURN(std::string hex, RandomHex(8));
  return absl::StrCat(prefix, hex);
}

}  // namespace control_internal

using control_internal::NewId;

namespace {

constexpr char kDefaultProject[] = "default";

}  // namespace

ControlPlane::ControlPlane(MetadataStore& metadata, KmsFactory& kms, ClusterRuntime& runtime,
                           ServiceIdentity identity, std::function<int64_t()> now_ms)
    : metadata_(metadata),
      kms_(kms),
      runtime_(runtime),
      identity_(std::move(identity)),
      now_ms_(now_ms ? std::move(now_ms) : SystemNowMs) {
  // The runtime serves each cluster with the engine its record names.
  runtime_.SetEngineLookup([this](const std::string& id) {
    auto c = metadata_.GetCluster(id);
    return c.ok() && *c ? ParseClusterEngine((*c)->engine).value_or(ClusterEngine::kKv)
                        : ClusterEngine::kKv;
  });
  runtime_.SetNodesLookup([this](const std::string& id) {
    auto c = metadata_.GetCluster(id);
    return c.ok() && *c ? (*c)->nodes : 1;
  });
}

absl::StatusOr<std::string> ControlPlane::Bootstrap() {
  ASSIGN_OR_RETURN(std::optional<std::string> existing, metadata_.OrganizationId());
  if (existing) return absl::AlreadyExistsError("organization already exists");
  ASSIGN_OR_RETURN(std::string org_id, NewId("org-"));
  User owner;
  ASSIGN_OR_RETURN(owner.id, NewId("u-"));
  owner.org_id = org_id;
  owner.name = "owner";
  owner.org_role = "owner";
  owner.created_at = Now();
  ASSIGN_OR_RETURN(std::string token, RandomHex(24));
  token = "kw_" + token;
  RETURN_IF_ERROR(
      metadata_.Bootstrap(org_id, "default", owner, {Sha256Hex(token), 0, "", "owner"}));
  RETURN_IF_ERROR(CreateProject(owner, kDefaultProject, false).status());
  return token;
}

absl::StatusOr<std::string> ControlPlane::DefaultProjectId() {
  ASSIGN_OR_RETURN(std::optional<std::string> org, metadata_.OrganizationId());
  if (!org) return absl::FailedPreconditionError("no organization yet");
  ASSIGN_OR_RETURN(std::vector<Project> projects,
                   metadata_.ListProjects(*org, std::nullopt, {0, 1}));
  if (projects.empty() || projects[0].name != kDefaultProject) {
    return absl::NotFoundError("the default project is gone; name a project with --project");
  }
  return projects[0].id;
}

absl::StatusOr<User> ControlPlane::Authenticate(const std::string& token) {
  if (token.empty()) {
    // Neutral: the API says what is wrong, the CLI says how to pass a token.
    return absl::UnauthenticatedError("missing bearer token");
  }
  ASSIGN_OR_RETURN(std::optional<User> user, metadata_.UserByToken(Sha256Hex(token), Now()));
  if (!user) return absl::UnauthenticatedError("invalid or expired token");
  return *user;
}

}  // namespace keyward
