// Project rules in the control plane: CMEK is chosen when a project is created and a PATCH can
// never change it (either way), a refusal is audited like every rule and changes nothing, and
// renames stay with project owners. A real control plane (control_plane_world.h).
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "control/control_plane.h"
#include "control_plane_world.h"

namespace keyward {
namespace {

class ControlProjectsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(world_.ok()) << world_.error(); }

  // The project's events with `action` and `result`.
  std::vector<AuditEvent> Events(const std::string& project, const std::string& action,
                                 const std::string& result) {
    std::vector<AuditEvent> out;
    for (const AuditEvent& e : world_.Audit(project)) {
      if (e.action == action && e.result == result) out.push_back(e);
    }
    return out;
  }

  static ControlPlane::ProjectChange Change(std::optional<std::string> name,
                                            std::optional<bool> cmek_enabled) {
    ControlPlane::ProjectChange c;
    c.name = std::move(name);
    c.cmek_enabled = cmek_enabled;
    return c;
  }

  ControlPlaneWorld world_{{.prefix = "projects"}};
  std::unique_ptr<ControlPlane>& control_ = world_.control;
  User& owner_ = world_.owner;
};

TEST_F(ControlProjectsTest, CmekCannotBeTurnedOffAndTheRefusalIsAudited) {
  std::string id = world_.NewProject("vault", /*cmek=*/true);
  // A name in the same request is not applied either: nothing half-written.
  auto p = control_->UpdateProject(owner_, id, Change("renamed", false));
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_TRUE(absl::StrContains(p.status().message(), "CMEK cannot be turned off")) << p.status();
  auto now = control_->GetProject(owner_, id);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_TRUE(now->cmek_enabled);
  EXPECT_EQ(now->name, "vault");
  auto refused = Events(id, "project.update", "failure");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].target, id);
  EXPECT_TRUE(absl::StrContains(refused[0].actor, owner_.id)) << refused[0].actor;
  EXPECT_TRUE(absl::StrContains(refused[0].message, "CMEK cannot be turned off"));
  EXPECT_TRUE(Events(id, "project.rename", "success").empty());
}

TEST_F(ControlProjectsTest, CmekCannotBeEnabledLaterAndTheErrorSaysWhatToDo) {
  std::string id = world_.NewProject("plain", /*cmek=*/false);
  auto p = control_->UpdateProject(owner_, id, Change(std::nullopt, true));
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_TRUE(
      absl::StrContains(p.status().message(), "create a new project with cmek_enabled=true"))
      << p.status();
  auto now = control_->GetProject(owner_, id);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_FALSE(now->cmek_enabled);
  EXPECT_EQ(Events(id, "project.update", "failure").size(), 1u);
}

TEST_F(ControlProjectsTest, RepeatingTheProjectsOwnCmekSettingRenames) {
  std::string id = world_.NewProject("vault", /*cmek=*/true);
  auto same = control_->UpdateProject(owner_, id, Change(std::nullopt, true));
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->name, "vault");
  auto p = control_->UpdateProject(owner_, id, Change("vault-2", true));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "vault-2");
  EXPECT_TRUE(p->cmek_enabled);
  EXPECT_EQ(control_->GetProject(owner_, id)->name, "vault-2");
  EXPECT_EQ(Events(id, "project.rename", "success").size(), 1u);
  EXPECT_TRUE(Events(id, "project.update", "failure").empty());
}

TEST_F(ControlProjectsTest, OnlyProjectOwnersRenameAndTheDenialIsAudited) {
  std::string id = world_.NewProject("shop", /*cmek=*/false);
  auto m = control_->AddMember(owner_, id, "carol", "project_member", 0);
  ASSERT_TRUE(m.ok()) << m.status();
  auto carol = control_->Authenticate(m->second);
  ASSERT_TRUE(carol.ok()) << carol.status();
  auto p = control_->UpdateProject(*carol, id, Change("hers", std::nullopt));
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(p.status())) << p.status();
  EXPECT_EQ(control_->GetProject(owner_, id)->name, "shop");
  auto denied = Events(id, "project.rename", "failure");
  ASSERT_EQ(denied.size(), 1u);
  EXPECT_TRUE(absl::StrContains(denied[0].actor, carol->id));
}

}  // namespace
}  // namespace keyward
