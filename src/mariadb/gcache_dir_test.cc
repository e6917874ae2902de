#include "mariadb/gcache_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "crypto/random.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

struct stat Lstat(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return st;
}

class GcacheDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() / ("kw-gcache-test-" + *RandomHex(8))).string();
    fs::create_directories(root_);
    path_ = root_ + "/kw-c1-n0";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string root_, path_;
  MariadbOsAccount self_;  // drop = false: only keyward's own euid counts as ours
};

TEST_F(GcacheDirTest, MakesAnEmptyPrivateDirectory) {
  ASSERT_TRUE(MakeFreshPrivateDir(path_, self_).ok());
  struct stat st = Lstat(path_);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(GcacheDirTest, StaleOwnDirectoryIsReplacedEmpty) {
  // A leftover of a crash: write sets in a file, a subdirectory, a link to a file outside.
  fs::create_directories(path_ + "/sub");
  std::ofstream(path_ + "/galera.cache") << "plaintext write set";
  std::ofstream(path_ + "/sub/gcache.page.000000") << "page";
  std::string outside = root_ + "/outside";
  std::ofstream(outside) << "keep me";
  fs::create_symlink(outside, path_ + "/link");
  chmod(path_.c_str(), 0777);
  ASSERT_TRUE(MakeFreshPrivateDir(path_, self_).ok());
  EXPECT_TRUE(fs::is_empty(path_));
  EXPECT_EQ(Lstat(path_).st_mode & 07777, 0700u);
  EXPECT_TRUE(fs::exists(outside)) << "the link was followed";
}

TEST_F(GcacheDirTest, SymlinkIsRefusedAndItsTargetUntouched) {
  std::string target = root_ + "/on-disk";
  fs::create_directories(target);
  std::ofstream(target + "/theirs") << "x";
  fs::create_directory_symlink(target, path_);
  absl::Status st = MakeFreshPrivateDir(path_, self_);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find(path_), std::string::npos) << st;
  EXPECT_NE(st.message().find("symbolic link"), std::string::npos) << st;
  EXPECT_TRUE(fs::is_symlink(path_));
  EXPECT_TRUE(fs::exists(target + "/theirs"));
  // Removal on stop/delete leaves it alone too.
  EXPECT_FALSE(RemoveOwnDir(path_, self_).ok());
  EXPECT_TRUE(fs::exists(target + "/theirs"));
}

TEST_F(GcacheDirTest, NonDirectoryIsRefused) {
  std::ofstream(path_) << "a file";
  absl::Status st = MakeFreshPrivateDir(path_, self_);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find("not a directory"), std::string::npos) << st;
  EXPECT_TRUE(fs::is_regular_file(path_));
}

TEST_F(GcacheDirTest, ForeignOwnedDirectoryIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs root (chown to another user)";
  fs::create_directories(path_);
  std::ofstream(path_ + "/planted") << "x";
  ASSERT_EQ(chown(path_.c_str(), 65534, 65534), 0);  // nobody's, 0777 like a planted one
  chmod(path_.c_str(), 0777);
  absl::Status st = MakeFreshPrivateDir(path_, self_);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find(path_), std::string::npos) << st;
  EXPECT_NE(st.message().find("uid 65534"), std::string::npos) << st;
  EXPECT_TRUE(fs::exists(path_ + "/planted"));
  EXPECT_EQ(Lstat(path_).st_uid, 65534u);
  // The mariadb account's own leftover is ours to remove.
  MariadbOsAccount account;
  account.drop = true;
  account.uid = 65534;
  account.gid = 65534;
  EXPECT_TRUE(MakeFreshPrivateDir(path_, account).ok());
  EXPECT_TRUE(fs::is_empty(path_));
  EXPECT_EQ(Lstat(path_).st_uid, geteuid());
}

TEST_F(GcacheDirTest, RemoveOwnDirRemovesAndToleratesAbsence) {
  fs::create_directories(path_ + "/a/b");
  std::ofstream(path_ + "/a/b/f") << "x";
  EXPECT_TRUE(RemoveOwnDir(path_, self_).ok());
  EXPECT_FALSE(fs::exists(path_));
  EXPECT_TRUE(RemoveOwnDir(path_, self_).ok());
}

// What cluster delete calls, nodes running or not: the cluster's real /dev/shm names.
TEST_F(GcacheDirTest, RemoveGaleraGcachesRemovesEveryNodesDirectoryButNoLink) {
  if (!fs::is_directory(kGaleraGcacheRoot)) GTEST_SKIP() << "SKIPPED LOUDLY: no /dev/shm";
  const std::string id = "c-test" + *RandomHex(6);
  const std::string base = std::string(kGaleraGcacheRoot) + "/kw-" + id + "-n";
  for (int i = 0; i < 2; ++i) {
    fs::create_directories(base + std::to_string(i) + "/sub");
    std::ofstream(base + std::to_string(i) + "/sub/galera.cache") << "write set";
  }
  std::string target = root_ + "/elsewhere";
  fs::create_directories(target);
  fs::create_directory_symlink(target, base + "2");
  RemoveGaleraGcaches(id, self_);
  EXPECT_FALSE(fs::exists(base + "0"));
  EXPECT_FALSE(fs::exists(base + "1"));
  EXPECT_TRUE(fs::is_symlink(base + "2")) << "someone else's entry is left alone (logged)";
  EXPECT_TRUE(fs::is_directory(target));
  fs::remove(base + "2");
}

}  // namespace
}  // namespace keyward
