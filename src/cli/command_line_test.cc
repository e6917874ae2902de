#include "cli/command_line.h"

#include <gtest/gtest.h>

namespace keyward {
namespace {

using Args = std::vector<std::string>;

TEST(HoistGlobalFlags, LeadingGlobalsMoveBehindEveryOtherArgument) {
  auto out = HoistGlobalFlags({"--token", "T", "--server=http://h:1", "cluster", "get", "orders"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, (Args{"cluster", "get", "orders", "--token", "T", "--server=http://h:1"}));
}

TEST(HoistGlobalFlags, CommandLinesWithoutLeadingFlagsAreUntouched) {
  Args args = {"cluster", "list", "--token", "T"};
  EXPECT_EQ(*HoistGlobalFlags(args), args);
  EXPECT_EQ(*HoistGlobalFlags({}), Args{});
}

TEST(HoistGlobalFlags, VersionAndHelpBeforeTheCommandWin) {
  EXPECT_EQ(*HoistGlobalFlags({"--version"}), Args{"version"});
  EXPECT_EQ(*HoistGlobalFlags({"--token", "T", "-V", "cluster"}), Args{"version"});
  EXPECT_EQ(*HoistGlobalFlags({"-h"}), Args{"help"});
}

TEST(HoistGlobalFlags, UnknownOrIncompleteFlagsAreClearErrors) {
  auto unknown = HoistGlobalFlags({"--name", "x", "cluster", "create"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("--name"), std::string::npos);
  auto dangling = HoistGlobalFlags({"--server"});
  EXPECT_NE(dangling.status().message().find("--server needs a value"), std::string::npos);
  EXPECT_FALSE(HoistGlobalFlags({"--token", "T"}).ok());  // flags and no command
}

TEST(CompletionScript, BashAndZshOnly) {
  auto bash = CompletionScript("bash");
  ASSERT_TRUE(bash.ok());
  EXPECT_NE(bash->find("complete -F _keyward keyward"), std::string::npos);
  EXPECT_NE(bash->find("--with-backups"), std::string::npos);
  auto zsh = CompletionScript("zsh");
  ASSERT_TRUE(zsh.ok());
  EXPECT_NE(zsh->find("bashcompinit"), std::string::npos);
  EXPECT_EQ(CompletionScript("fish").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace keyward
