// Accounts: project members, API tokens and the organization-level project_creator grant.
// Roles are checked before anything else and fail closed; every change and every denial is
// audited. Token and grant events belong to the organization (filed under its id), member
// events to their project. State changes are compare-and-set in the metadata store.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {

using control_internal::NewId;
using control_internal::ValidateName;

namespace {

constexpr int64_t kMaxTokenTtlSeconds = 365LL * 24 * 3600;

bool IsProjectRole(const std::string& role) {
  return role == "project_owner" || role == "project_member" || role == "project_viewer";
}

absl::StatusOr<std::string> NewApiToken() {
  ASSIGN_OR_RETURN(std::string hex, RandomHex(24));
  return "kw_" + hex;
}

absl::Status NoSuchMember(const std::string& project_id, const std::string& user_id) {
  return absl::NotFoundError(
      absl::StrCat("user '", user_id, "' is not a member of project ", project_id));
}

// Why a compare-and-set on a membership that was `role` did not apply: the project's last owner
// (the store refuses to leave a project without one), or a concurrent change.
absl::Status MembershipRefusal(MetadataStore& metadata, const std::string& project_id,
                               const std::string& user_id, const std::string& role,
                               const char* what) {
  absl::StatusOr<std::string> now = metadata.ProjectRole(project_id, user_id);
  if (role == "project_owner" && now.ok() && *now == role) {
    return absl::FailedPreconditionError(absl::StrCat(
        "user '", user_id, "' is the last project_owner of project ", project_id,
        ": a project cannot be left without an owner; give another member the project_owner "
        "role first (keyward member set-role USER_ID --project ",
        project_id, " --role project_owner)"));
  }
  return absl::AbortedError(absl::StrCat("the ", what, " of ", user_id, " in project ", project_id,
                                         " changed while this request ran; read it and try again"));
}

}  // namespace

absl::StatusOr<std::pair<User, std::string>> ControlPlane::AddMember(const User& actor,
                                                                     const std::string& project_id,
                                                                     const std::string& name,
                                                                     const std::string& role,
                                                                     int64_t token_ttl_seconds) {
  RETURN_IF_ERROR(ValidateName("member", name));
  if (role != "project_owner" && role != "project_member" && role != "project_viewer") {
    return absl::InvalidArgumentError(
        "role must be project_owner, project_member or project_viewer");
  }
  if (token_ttl_seconds < 0) return absl::InvalidArgumentError("token_ttl_seconds must be >= 0");
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kOwner, "member.add", name).status());
  User u;
  ASSIGN_OR_RETURN(u.id, NewId("u-"));
  u.org_id = actor.org_id;
  u.name = name;
  u.org_role = "member";
  u.created_at = Now();
  ASSIGN_OR_RETURN(std::string token, RandomHex(24));
  token = "kw_" + token;
  int64_t expires = token_ttl_seconds > 0 ? Now() + token_ttl_seconds : 0;
  RETURN_IF_ERROR(
      metadata_.AddMember(project_id, u, role, {Sha256Hex(token), expires, "", "member"}));
  Audit(&actor, project_id, "member.add", u.id, nullptr, absl::OkStatus(), role);
  return std::make_pair(u, token);
}

absl::StatusOr<std::vector<Member>> ControlPlane::ListMembers(const User& actor,
                                                              const std::string& project_id,
                                                              Page page) {
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kView).status());
  return metadata_.ListMembers(project_id, page);
}

absl::StatusOr<Member> ControlPlane::ChangeMemberRole(const User& actor,
                                                      const std::string& project_id,
                                                      const std::string& user_id,
                                                      const std::string& role) {
  RETURN_IF_ERROR(
      Authorize(actor, project_id, Need::kOwner, "member.change_role", user_id).status());
  if (!IsProjectRole(role)) {
    return absl::InvalidArgumentError(
        "role must be project_owner, project_member or project_viewer");
  }
  ASSIGN_OR_RETURN(std::string from, metadata_.ProjectRole(project_id, user_id));
  if (from.empty()) return NoSuchMember(project_id, user_id);
  ASSIGN_OR_RETURN(bool changed, metadata_.ChangeMemberRole(project_id, user_id, from, role));
  absl::Status st =
      changed ? absl::OkStatus() : MembershipRefusal(metadata_, project_id, user_id, from, "role");
  Audit(&actor, project_id, "member.change_role", user_id, nullptr, st,
        absl::StrCat(from, " -> ", role));
  RETURN_IF_ERROR(st);
  ASSIGN_OR_RETURN(std::optional<User> user, metadata_.GetUser(user_id));
  if (!user) return NoSuchMember(project_id, user_id);
  return Member{*user, role};
}

absl::StatusOr<Member> ControlPlane::RemoveMember(const User& actor, const std::string& project_id,
                                                  const std::string& user_id) {
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kOwner, "member.remove", user_id).status());
  ASSIGN_OR_RETURN(std::string role, metadata_.ProjectRole(project_id, user_id));
  if (role.empty()) return NoSuchMember(project_id, user_id);
  ASSIGN_OR_RETURN(std::optional<User> user, metadata_.GetUser(user_id));
  if (!user) return NoSuchMember(project_id, user_id);
  ASSIGN_OR_RETURN(bool removed, metadata_.RemoveMember(project_id, user_id, role));
  absl::Status st = removed ? absl::OkStatus()
                            : MembershipRefusal(metadata_, project_id, user_id, role, "membership");
  Audit(&actor, project_id, "member.remove", user_id, nullptr, st, role);
  RETURN_IF_ERROR(st);
  return Member{*user, role};
}

absl::StatusOr<User> ControlPlane::SetProjectCreator(const User& actor, const std::string& user_id,
                                                     bool granted) {
  const char* action = granted ? "org.grant_project_creator" : "org.revoke_project_creator";
  if (actor.org_role != "owner") {
    absl::Status denied = absl::PermissionDeniedError(
        "only an organization owner can grant or take back project_creator");
    AuditDenied(actor, actor.org_id, action, user_id, denied);
    return denied;
  }
  ASSIGN_OR_RETURN(std::optional<User> user, metadata_.GetUser(user_id));
  if (!user || user->org_id != actor.org_id) {
    return absl::NotFoundError(absl::StrCat("user '", user_id, "' does not exist"));
  }
  absl::Status st = metadata_.SetProjectCreator(user_id, granted);
  Audit(&actor, actor.org_id, action, user_id, nullptr, st);
  RETURN_IF_ERROR(st);
  user->project_creator = granted;
  return *user;
}

absl::StatusOr<std::vector<TokenInfo>> ControlPlane::ListTokens(const User& actor) {
  return metadata_.ListTokens(actor.id);
}

absl::StatusOr<std::pair<TokenInfo, std::string>> ControlPlane::CreateToken(const User& actor,
                                                                            int64_t ttl_seconds) {
  if (ttl_seconds < 1 || ttl_seconds > kMaxTokenTtlSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("ttl_seconds must be from 1 to ",
                                                   kMaxTokenTtlSeconds,
                                                   " (a year): tokens you create always expire"));
  }
  ASSIGN_OR_RETURN(std::string token, NewApiToken());
  ASSIGN_OR_RETURN(std::string hex, RandomHex(8));
  // Never outlives the token that asked for it: a short-lived (or stolen) token cannot mint a
  // longer-lived one.
  int64_t expires_at = Now() + ttl_seconds;
  if (actor.token_expires_at != 0) expires_at = std::min(expires_at, actor.token_expires_at);
  TokenInfo info{"t-" + hex, actor.id, "personal", Now(), expires_at};
  absl::Status st = metadata_.InsertToken(
      actor.id, {Sha256Hex(token), info.expires_at, info.id, info.kind}, info.created_at);
  Audit(&actor, actor.org_id, "token.create", info.id, nullptr, st,
        absl::StrCat("expires in ", expires_at - info.created_at, " s"));
  RETURN_IF_ERROR(st);
  return std::make_pair(info, token);
}

absl::StatusOr<TokenInfo> ControlPlane::RevokeToken(const User& actor,
                                                    const std::string& token_id) {
  absl::Status gone = absl::NotFoundError(absl::StrCat("token '", token_id, "' does not exist"));
  ASSIGN_OR_RETURN(std::optional<TokenInfo> token, metadata_.GetToken(token_id));
  if (!token) return gone;
  if (token->user_id != actor.id) {
    ASSIGN_OR_RETURN(std::optional<User> holder, metadata_.GetUser(token->user_id));
    if (actor.org_role != "owner" || !holder || holder->org_id != actor.org_id) {
      // Someone else's token: refused as if it did not exist, and audited.
      AuditDenied(actor, actor.org_id, "token.revoke", token_id,
                  absl::PermissionDeniedError("not the caller's token"));
      return gone;
    }
  }
  if (token->kind == "owner") {
    absl::Status refused = absl::FailedPreconditionError(
        "the owner token is rotated, not revoked (the organization would have no owner "
        "credential): POST /api/v1/tokens/owner:rotate");
    Audit(&actor, actor.org_id, "token.revoke", token_id, nullptr, refused);
    return refused;
  }
  ASSIGN_OR_RETURN(bool deleted, metadata_.DeleteToken(token_id, token->user_id));
  absl::Status st = deleted ? absl::OkStatus() : gone;
  Audit(&actor, actor.org_id, "token.revoke", token_id, nullptr, st, token->kind);
  RETURN_IF_ERROR(st);
  return *token;
}

absl::StatusOr<ClusterCreated> ControlPlane::ResetClusterPassword(const User& actor,
                                                                  const std::string& id) {
  // Under the cluster's claim: a resume or a key restore reading the stored hash runs before
  // or after, never with the old password after this returns.
  ASSIGN_OR_RETURN(Claimed held,
                   ClaimForChange(actor, id, Need::kMember, "cluster.reset_password"));
  if (held.cluster.engine == "mariadb") {
    // Its accounts live in mariadbd's own tables, which keyward does not rewrite.
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster ", id,
        " is a mariadb cluster: change its admin password in MariaDB (ALTER USER admin "
        "IDENTIFIED BY '…'); keyward does not reset it"));
  }
  ASSIGN_OR_RETURN(std::string password, RandomHex(16));
  std::string hash = Sha256Hex(password);
  ASSIGN_OR_RETURN(bool set, metadata_.SetClusterPassword(id, hash, Now()));
  absl::Status st = set ? absl::OkStatus()
                        : absl::FailedPreconditionError(absl::StrCat(
                              "cluster ", id, " is being deleted; its password cannot change"));
  if (st.ok()) st = runtime_.ChangePassword(id, hash);
  Audit(&actor, held.cluster.project_id, "cluster.reset_password", id, nullptr, st);
  RETURN_IF_ERROR(st);
  ASSIGN_OR_RETURN(std::optional<Cluster> stored, metadata_.GetCluster(id));
  if (!stored) return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
  return ClusterCreated{WithUnrecorded(*stored), password};
}

absl::StatusOr<std::string> ControlPlane::RotateOwnerToken(const User& actor) {
  if (actor.org_role != "owner" || actor.token_kind != "owner") {
    // The owner token itself, not a personal token of the owner's: a short-lived or stolen
    // personal token must not turn into a permanent owner credential.
    absl::Status denied = absl::PermissionDeniedError(
        "only the organization owner's owner token can rotate the owner token");
    AuditDenied(actor, actor.org_id, "token.rotate_owner", actor.id, denied);
    return denied;
  }
  ASSIGN_OR_RETURN(std::string token, NewApiToken());
  // The old token dies in the same transaction the new one is born; then the file follows. If
  // the file cannot be written the answer still carries the token (the only copy), and says so.
  absl::Status st =
      metadata_.ReplaceOwnerToken(actor.id, {Sha256Hex(token), 0, "", "owner"}, Now());
  Audit(&actor, actor.org_id, "token.rotate_owner", actor.id, nullptr, st);
  RETURN_IF_ERROR(st);
  if (!owner_token_path_.empty()) {
    absl::Status written = WriteFileAtomically(owner_token_path_, token + "\n", 0600);
    if (!written.ok()) {
      LogError("token.owner_file_write_failed", std::string(written.message()),
               {{"path", owner_token_path_}});
      Audit(&actor, actor.org_id, "token.rotate_owner.write_file", owner_token_path_, nullptr,
            written);
    }
  }
  return token;
}

}  // namespace keyward
