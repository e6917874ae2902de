#include "mariadb/child_process.h"

#include <gtest/gtest.h>
#include <unistd.h>

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

// /proc/PID/cmdline's first argument; "" when unreadable.
std::string ProcArgv0(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string arg;
  std::getline(in, arg, '\0');
  return arg;
}

// Starts /bin/sleep (as `run_as`) on a thread that ends once sleep runs; the child must die.
void ExpectChildDiesWithItsThread(const MariadbOsAccount& run_as) {
  std::unique_ptr<ChildProcess> child;
  std::thread([&] {
    ChildProcess::Options options;
    options.run_as = run_as;
    auto c = ChildProcess::Start({"/bin/sleep", "60"}, options);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE((*c)->Release().ok());
    // Until exec: the id switch (which clears the parent-death signal) is behind it then.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ProcArgv0((*c)->pid()) != "/bin/sleep" && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
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

// A mariadb-backup or mbstream must not outlive the keyward job that started it: when the
// starting thread ends without waiting (keyward killed), the kernel kills the child.
TEST(ChildProcessTest, DiesWithTheThreadThatStartedIt) { ExpectChildDiesWithItsThread({}); }

// The same as the account: the change of ids clears PR_SET_PDEATHSIG, so the child sets it again.
TEST(ChildProcessTest, AnAccountsChildDiesWithTheThreadThatStartedIt) {
  if (geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs root to switch to another account";
  ExpectChildDiesWithItsThread(MariadbOsAccount{"nobody", 65534, 65534, true});
}

TEST(ChildProcessTest, RunsAndReportsItsExit) {
  auto c = ChildProcess::Start({"/bin/sh", "-c", "echo why >&2; exit 3"}, {});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->Release().ok());
  absl::Status st = (*c)->Wait("the script");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("why"), std::string::npos) << st;
}

TEST(ChildProcessTest, RunsItsJobAsTheAccount) {
  if (geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs root to switch to another account";
  ChildProcess::Options options;
  options.pipe_stdout = true;
  options.run_as = MariadbOsAccount{"nobody", 65534, 65534, true};
  auto child = ChildProcess::Start({"/bin/sh", "-c", "id -u; id -g; id -G"}, options);
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE((*child)->Release().ok());
  std::string out;
  char buf[256];
  for (;;) {
    auto n = (*child)->ReadStdout(buf, sizeof(buf));
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
    out.append(buf, *n);
  }
  EXPECT_TRUE((*child)->Wait("id").ok());
  EXPECT_EQ(out, "65534\n65534\n65534\n");  // uid, gid, and no group of root's
}

}  // namespace
}  // namespace keyward
