#include "mariadb/child_process.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace keyward {
namespace {

// The state letter in /proc/PID/stat ('Z' for a zombie); '?' when unreadable.
char ProcState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

// A mariadb-backup or mbstream must not outlive the keyward job that started it: when the
// starting thread ends without waiting (keyward killed), the kernel kills the child.
TEST(ChildProcessTest, DiesWithTheThreadThatStartedIt) {
  std::unique_ptr<ChildProcess> child;
  std::thread([&] {
    auto c = ChildProcess::Start({"/bin/sleep", "60"}, {});
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE((*c)->Release().ok());
    child = *std::move(c);
  }).join();
  ASSERT_TRUE(child);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ProcState(child->pid()) != 'Z' && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(ProcState(child->pid()), 'Z') << "the child outlived the thread that started it";
  child.reset();  // reaps it
}

TEST(ChildProcessTest, RunsAndReportsItsExit) {
  auto c = ChildProcess::Start({"/bin/sh", "-c", "echo why >&2; exit 3"}, {});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->Release().ok());
  absl::Status st = (*c)->Wait("the script");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("why"), std::string::npos) << st;
}

}  // namespace
}  // namespace keyward
