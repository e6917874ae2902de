#include "util/data_dir_lock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "util/file_util.h"

namespace keyward {
namespace {

std::string TempDir() {
  std::string tmpl = testing::TempDir() + "/data_dir_lock_XXXXXX";
  return mkdtemp(tmpl.data());
}

TEST(DataDirLockTest, SecondHolderIsRefusedWithDirAndPid) {
  std::string dir = TempDir();
  auto first = DataDirLock::Acquire(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  auto pid_text = ReadFileToString(dir + "/keyward.lock", 64);
  ASSERT_TRUE(pid_text.ok());
  EXPECT_EQ(*pid_text, absl::StrCat(getpid(), "\n"));
  EXPECT_EQ(std::filesystem::status(dir + "/keyward.lock").permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  // flock belongs to the open file, so a second open in this process is refused like another
  // process would be.
  auto second = DataDirLock::Acquire(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_NE(second.status().message().find(dir), absl::string_view::npos) << second.status();
  EXPECT_NE(second.status().message().find(absl::StrCat("pid ", getpid())), absl::string_view::npos)
      << second.status();

  first->reset();
  EXPECT_TRUE(DataDirLock::Acquire(dir).ok()) << "released on destruction";
  std::filesystem::remove_all(dir);
}

// A holder that dies without cleaning up (kill -9) leaves the file, not the lock.
TEST(DataDirLockTest, DeadHolderDoesNotBlock) {
  std::string dir = TempDir();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = DataDirLock::Acquire(dir);
    _exit(held.ok() ? 0 : 1);  // exits holding it
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto lock = DataDirLock::Acquire(dir);
  EXPECT_TRUE(lock.ok()) << lock.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace keyward
