// Who may do what: project creation (organization owner or project_creator), members (list,
// role change, removal), tokens (create with expiry, revoke, owner rotation) — each denial and
// change audited. A real control plane and metadata store, with the fake KMS behind the seam.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "control/control_plane.h"
#include "control_plane_world.h"
#include "crypto/sha256.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world_.ok()) << world_.error();
    project_ = world_.NewProject("payments", false);
  }

  std::pair<User, std::string> NewMember(const std::string& name, const std::string& role) {
    auto m = control_->AddMember(owner_, project_, name, role, 0);
    EXPECT_TRUE(m.ok()) << m.status();
    return {*control_->Authenticate(m->second), m->second};
  }
  // The organization's own events (project creation, tokens, grants).
  std::vector<AuditEvent> OrgAudit() { return world_.Audit(owner_.org_id); }
  bool Audited(const std::vector<AuditEvent>& events, const std::string& action,
               const std::string& result, const std::string& actor_id) {
    for (const auto& e : events) {
      if (e.action == action && e.result == result && absl::StrContains(e.actor, actor_id)) {
        return true;
      }
    }
    return false;
  }

  ControlPlaneWorld world_{{.prefix = "accounts"}};
  std::unique_ptr<MetadataStore>& metadata_ = world_.metadata;
  std::unique_ptr<ControlPlane>& control_ = world_.control;
  User& owner_ = world_.owner;
  std::string& owner_token_ = world_.owner_token;
  std::string project_;
};

TEST_F(AccountsTest, OnlyOwnersAndProjectCreatorsCreateProjects) {
  auto [viewer, viewer_token] = NewMember("alice", "project_viewer");
  auto [member, member_token] = NewMember("bob", "project_owner");
  for (const User& u : {viewer, member}) {
    auto p = control_->CreateProject(u, "mine-" + u.name, false);
    ASSERT_FALSE(p.ok());
    EXPECT_TRUE(absl::IsPermissionDenied(p.status())) << p.status();
    EXPECT_TRUE(absl::StrContains(p.status().message(), "project_creator"));
    EXPECT_TRUE(Audited(OrgAudit(), "project.create", "failure", u.id));
  }
  // Granting is for organization owners; a denied grant is audited too.
  EXPECT_TRUE(
      absl::IsPermissionDenied(control_->SetProjectCreator(member, member.id, true).status()));
  EXPECT_TRUE(Audited(OrgAudit(), "org.grant_project_creator", "failure", member.id));
  ASSERT_TRUE(control_->SetProjectCreator(owner_, viewer.id, true).ok());
  viewer = *control_->Authenticate(viewer_token);
  EXPECT_TRUE(viewer.project_creator);
  auto created = control_->CreateProject(viewer, "alices", false);
  ASSERT_TRUE(created.ok()) << created.status();
  // The CMEK choice stays with organization owners.
  EXPECT_TRUE(
      absl::IsPermissionDenied(control_->CreateProject(viewer, "alices-cmek", true).status()));
  ASSERT_TRUE(control_->SetProjectCreator(owner_, viewer.id, false).ok());
  viewer = *control_->Authenticate(viewer_token);
  EXPECT_FALSE(control_->CreateProject(viewer, "again", false).ok());
}

TEST_F(AccountsTest, MembersAreListedChangedAndRemovedByProjectOwnersOnly) {
  auto [viewer, viewer_token] = NewMember("vic", "project_viewer");
  auto [member, member_token] = NewMember("meg", "project_member");
  auto list = control_->ListMembers(viewer, project_, {0, 100});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), 3u);  // the owner, vic, meg
  // A member may not promote herself; denied and audited in the project.
  auto promote = control_->ChangeMemberRole(member, project_, member.id, "project_owner");
  EXPECT_TRUE(absl::IsPermissionDenied(promote.status())) << promote.status();
  auto events = *control_->ListAudit(owner_, project_, 0, INT64_MAX, {0, 1000});
  EXPECT_TRUE(Audited(events, "member.change_role", "failure", member.id));
  auto changed = control_->ChangeMemberRole(owner_, project_, viewer.id, "project_member");
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*metadata_->ProjectRole(project_, viewer.id), "project_member");
  EXPECT_TRUE(absl::IsInvalidArgument(
      control_->ChangeMemberRole(owner_, project_, viewer.id, "admin").status()));
  EXPECT_TRUE(absl::IsNotFound(
      control_->ChangeMemberRole(owner_, project_, "u-none", "project_member").status()));
  // Compare-and-set: a role that moved since it was read is not overwritten.
  EXPECT_FALSE(
      *metadata_->ChangeMemberRole(project_, viewer.id, "project_viewer", "project_owner"));
  // Removed from its only project, the member's token no longer authenticates.
  ASSERT_TRUE(control_->RemoveMember(owner_, project_, member.id).ok());
  EXPECT_TRUE(absl::IsUnauthenticated(control_->Authenticate(member_token).status()));
  events = *control_->ListAudit(owner_, project_, 0, INT64_MAX, {0, 1000});
  EXPECT_TRUE(Audited(events, "member.remove", "success", owner_.id));
}

TEST_F(AccountsTest, TheLastProjectOwnerCanBeNeitherDemotedNorRemoved) {
  const std::string me = owner_.id;  // the project's only project_owner so far
  auto demote = control_->ChangeMemberRole(owner_, project_, me, "project_member");
  ASSERT_TRUE(absl::IsFailedPrecondition(demote.status())) << demote.status();  // 409
  EXPECT_TRUE(absl::StrContains(demote.status().message(), "last project_owner"));
  EXPECT_TRUE(absl::StrContains(demote.status().message(), "--role project_owner"));
  auto remove = control_->RemoveMember(owner_, project_, me);
  ASSERT_TRUE(absl::IsFailedPrecondition(remove.status())) << remove.status();
  EXPECT_EQ(*metadata_->ProjectRole(project_, me), "project_owner");
  auto events = *control_->ListAudit(owner_, project_, 0, INT64_MAX, {0, 1000});
  EXPECT_TRUE(Audited(events, "member.change_role", "failure", me));
  EXPECT_TRUE(Audited(events, "member.remove", "failure", me));

  // With a second owner the first may step down; then the second is the last one.
  auto [bob, bob_token] = NewMember("bob", "project_owner");
  ASSERT_TRUE(control_->ChangeMemberRole(owner_, project_, me, "project_viewer").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(control_->RemoveMember(bob, project_, bob.id).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      control_->ChangeMemberRole(bob, project_, bob.id, "project_member").status()));
  // Owner to owner is no demotion.
  EXPECT_TRUE(control_->ChangeMemberRole(bob, project_, bob.id, "project_owner").ok());
  // The store itself refuses, so two concurrent demotions cannot both pass a check made before.
  EXPECT_FALSE(*metadata_->ChangeMemberRole(project_, bob.id, "project_owner", "project_member"));
  EXPECT_FALSE(*metadata_->RemoveMember(project_, bob.id, "project_owner"));
  EXPECT_EQ(*metadata_->ProjectRole(project_, bob.id), "project_owner");
  // A stale compare-and-set is still a conflict of its own, not a last-owner refusal.
  auto stale = control_->ChangeMemberRole(bob, project_, "u-none", "project_member");
  EXPECT_TRUE(absl::IsNotFound(stale.status())) << stale.status();
}

TEST_F(AccountsTest, TokensExpireAndRevokedOnesStopAtOnce) {
  auto [member, member_token] = NewMember("tia", "project_member");
  EXPECT_TRUE(absl::IsInvalidArgument(control_->CreateToken(member, 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(control_->CreateToken(member, 400LL * 86400).status()));
  auto made = control_->CreateToken(member, 3600);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_GT(made->first.expires_at, 0);
  ASSERT_TRUE(control_->Authenticate(made->second).ok());
  auto mine = control_->ListTokens(member);
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(mine->size(), 2u);  // the one given when added, and the new one
  // Someone else's token: not found for a member, and the attempt audited.
  auto [other, other_token] = NewMember("oz", "project_member");
  EXPECT_TRUE(absl::IsNotFound(control_->RevokeToken(other, made->first.id).status()));
  EXPECT_TRUE(Audited(OrgAudit(), "token.revoke", "failure", other.id));
  ASSERT_TRUE(control_->Authenticate(made->second).ok());
  ASSERT_TRUE(control_->RevokeToken(member, made->first.id).ok());
  EXPECT_TRUE(absl::IsUnauthenticated(control_->Authenticate(made->second).status()));
  EXPECT_TRUE(control_->Authenticate(member_token).ok());
  EXPECT_TRUE(Audited(OrgAudit(), "token.revoke", "success", member.id));
}

TEST_F(AccountsTest, ATokenCannotMintOneThatOutlivesItOrRotateTheOwnerToken) {
  // A member's one-hour token asks for a year: it gets at most its own hour.
  auto [member, member_token] = NewMember("sam", "project_member");
  auto hour = control_->CreateToken(member, 3600);
  ASSERT_TRUE(hour.ok());
  auto from_hour = *control_->Authenticate(hour->second);
  auto year = control_->CreateToken(from_hour, 365LL * 86400);
  ASSERT_TRUE(year.ok()) << year.status();
  EXPECT_LE(year->first.expires_at, hour->first.expires_at);
  // The owner's personal (expiring) token cannot rotate the owner token into a permanent one.
  auto personal = control_->CreateToken(owner_, 3600);
  ASSERT_TRUE(personal.ok());
  auto as_personal = *control_->Authenticate(personal->second);
  EXPECT_TRUE(absl::IsPermissionDenied(control_->RotateOwnerToken(as_personal).status()));
  EXPECT_TRUE(control_->Authenticate(owner_token_).ok());
}

TEST_F(AccountsTest, RotatedOwnerTokenReplacesTheOldOneAndItsFile) {
  std::string path = (world_.root() / "owner.token").string();
  std::ofstream(path) << owner_token_ << "\n";
  control_->SetOwnerTokenPath(path);
  auto [member, member_token] = NewMember("mo", "project_owner");
  EXPECT_TRUE(absl::IsPermissionDenied(control_->RotateOwnerToken(member).status()));
  EXPECT_TRUE(Audited(OrgAudit(), "token.rotate_owner", "failure", member.id));
  // The owner token is rotated, not revoked.
  auto owner_tokens = *control_->ListTokens(owner_);
  ASSERT_EQ(owner_tokens.size(), 1u);
  EXPECT_EQ(owner_tokens[0].kind, "owner");
  EXPECT_TRUE(
      absl::IsFailedPrecondition(control_->RevokeToken(owner_, owner_tokens[0].id).status()));
  auto rotated = control_->RotateOwnerToken(owner_);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_TRUE(absl::IsUnauthenticated(control_->Authenticate(owner_token_).status()));
  auto now_owner = control_->Authenticate(*rotated);
  ASSERT_TRUE(now_owner.ok());
  EXPECT_EQ(now_owner->id, owner_.id);
  std::string in_file;
  std::ifstream(path) >> in_file;
  EXPECT_EQ(in_file, *rotated);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(Audited(OrgAudit(), "token.rotate_owner", "success", owner_.id));
}

TEST_F(AccountsTest, ClusterPasswordResetReplacesTheStoredHashForMembersOnly) {
  auto created = control_->CreateCluster(owner_, project_,
                                         {"cache", "aws", "us-east-1", "starter", std::nullopt});
  ASSERT_TRUE(created.ok()) << created.status();
  auto [viewer, viewer_token] = NewMember("vi", "project_viewer");
  EXPECT_TRUE(absl::IsPermissionDenied(
      control_->ResetClusterPassword(viewer, created->cluster.id).status()));
  auto reset = control_->ResetClusterPassword(owner_, created->cluster.id);
  ASSERT_TRUE(reset.ok()) << reset.status();
  EXPECT_NE(reset->password, created->password);
  EXPECT_EQ(reset->cluster.password_sha256_hex, Sha256Hex(reset->password));
  auto stored = *metadata_->GetCluster(created->cluster.id);
  EXPECT_EQ(stored->password_sha256_hex, Sha256Hex(reset->password));
  auto events = *control_->ListAudit(owner_, project_, 0, INT64_MAX, {0, 1000});
  EXPECT_TRUE(Audited(events, "cluster.reset_password", "failure", viewer.id));
  EXPECT_TRUE(Audited(events, "cluster.reset_password", "success", owner_.id));
}

}  // namespace
}  // namespace keyward
