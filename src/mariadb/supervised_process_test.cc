#include "mariadb/supervised_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"

namespace keyward {
namespace {

using std::chrono::milliseconds;

bool Alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

// Polls until `pred` holds (at most 10 s).
template <typename P>
bool Eventually(P pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return pred();
}

SupervisedProcessOptions Shell(const std::string& script) {
  SupervisedProcessOptions o;
  o.name = "testproc";
  o.cluster_id = "c-test";
  o.argv = {"/bin/sh", "-c", script};
  o.first_backoff = milliseconds(10);
  o.max_backoff = milliseconds(50);
  o.stop_grace = milliseconds(3000);
  return o;
}

// A killed process comes back (a new pid), counted; a stop after that leaves nothing running.
TEST(SupervisedProcessTest, RestartsAfterACrashAndStopsCleanly) {
  SupervisedProcess p(Shell("echo started; exec sleep 60"));
  ASSERT_TRUE(p.Start().ok());
  pid_t first = p.pid();
  ASSERT_TRUE(Alive(first));
  ASSERT_EQ(kill(first, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return p.pid() != 0 && p.pid() != first; }));
  pid_t second = p.pid();
  EXPECT_TRUE(Alive(second));
  EXPECT_EQ(p.restarts(), 1);
  EXPECT_FALSE(p.gave_up());
  p.Stop();
  EXPECT_EQ(p.pid(), 0);
  EXPECT_FALSE(Alive(second));
  EXPECT_EQ(p.restarts(), 1);  // a stop is not a crash
}

// Its output reaches RecentOutput (and the log); a first start that fails says why with it.
TEST(SupervisedProcessTest, FailedFirstStartCarriesItsLastWords) {
  SupervisedProcessOptions o = Shell("echo 'cannot open the data dir' >&2; exit 3");
  o.ready = [](pid_t, const std::function<bool()>& running) {
    while (running()) std::this_thread::sleep_for(milliseconds(5));
    return absl::UnavailableError("it exited before serving");
  };
  SupervisedProcess p(o);
  absl::Status st = p.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot open the data dir"), std::string::npos) << st;
  EXPECT_EQ(p.restarts(), 0);  // never served: not restarted
}

// Crashing at once, again and again: bounded, then it stays down and says so.
TEST(SupervisedProcessTest, GivesUpAfterTooManyCrashesInARow) {
  auto dir = std::filesystem::temp_directory_path() / ("kw-supervised-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string marker = (dir / "served").string();
  // Serves the first time; every restart dies at once.
  SupervisedProcessOptions o =
      Shell("if [ -e " + marker + " ]; then exit 1; fi; touch " + marker + "; exec sleep 60");
  o.max_restarts = 3;
  // Serving = still alive after 2 s. A restart that dies at once must be seen at once, although
  // the thread checking readiness is the one that reaps.
  o.ready = [](pid_t, const std::function<bool()>& running) {
    for (int i = 0; i < 200; ++i) {
      if (!running()) return absl::UnavailableError("exited");
      std::this_thread::sleep_for(milliseconds(10));
    }
    return absl::OkStatus();
  };
  SupervisedProcess p(o);
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(marker); }));
  auto killed_at = std::chrono::steady_clock::now();
  kill(p.pid(), SIGKILL);
  ASSERT_TRUE(Eventually([&] { return p.gave_up(); }));
  // Backoffs of 10 + 20 + 40 ms, not a 2 s readiness wait per restart.
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, milliseconds(1500));
  EXPECT_EQ(p.restarts(), 3);
  EXPECT_EQ(p.pid(), 0);
  p.Stop();
  std::filesystem::remove_all(dir);
}

// A process that ignores SIGTERM is killed after the grace period, and Stop returns.
TEST(SupervisedProcessTest, StopKillsAfterTheGracePeriod) {
  SupervisedProcessOptions o = Shell("trap '' TERM; echo ready; while :; do sleep 0.05; done");
  o.stop_grace = milliseconds(300);
  o.ready = [](pid_t, const std::function<bool()>&) {
    std::this_thread::sleep_for(milliseconds(100));  // the trap is set
    return absl::OkStatus();
  };
  SupervisedProcess p(o);
  ASSERT_TRUE(p.Start().ok());
  pid_t pid = p.pid();
  auto t0 = std::chrono::steady_clock::now();
  p.Stop();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(300));
  EXPECT_FALSE(Alive(pid));
}

// No descriptor of the parent's reaches the child (only 0, 1, 2).
TEST(SupervisedProcessTest, ChildInheritsNoOtherDescriptors) {
  // Deliberately without O_CLOEXEC, and numbered apart from the one `ls` itself opens.
  int opened = open("/dev/null", O_RDONLY);
  ASSERT_GE(opened, 3);
  int leaky = fcntl(opened, F_DUPFD, 200);
  close(opened);
  ASSERT_GE(leaky, 200);
  auto dir = std::filesystem::temp_directory_path() / ("kw-fds-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string out = (dir / "fds").string();
  SupervisedProcess p(
      Shell("ls /proc/self/fd > " + out + ".tmp; mv " + out + ".tmp " + out + "; exec sleep 60"));
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(out); }));
  p.Stop();
  close(leaky);
  std::ifstream in(out);
  std::string fd;
  std::vector<std::string> fds;
  while (in >> fd) fds.push_back(fd);
  // 0, 1, 2 and the one `ls` opened to list the directory.
  EXPECT_LE(fds.size(), 4u);
  for (const auto& f : fds) EXPECT_NE(f, std::to_string(leaky));
  std::filesystem::remove_all(dir);
}

// keyward killed with SIGKILL: the process it started gets SIGTERM (PR_SET_PDEATHSIG) instead
// of running on without it (mariadbd would go on serving with the keys it has cached).
void ExpectChildDiesWithAKilledParent(const MariadbOsAccount& run_as) {
  int pids[2];
  ASSERT_EQ(pipe(pids), 0);
  pid_t keyward = fork();
  ASSERT_GE(keyward, 0);
  if (keyward == 0) {
    close(pids[0]);
    // The supervisor stands in for keyward; its child reports its pid and waits.
    SupervisedProcessOptions o = Shell("exec sleep 60");
    o.run_as = run_as;
    SupervisedProcess q(o);
    if (!q.Start().ok()) _exit(1);
    pid_t child = q.pid();
    if (write(pids[1], &child, sizeof(child)) != sizeof(child)) _exit(1);
    for (;;) pause();
  }
  close(pids[1]);
  pid_t child = 0;
  ASSERT_EQ(read(pids[0], &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  close(pids[0]);
  ASSERT_TRUE(Alive(child));
  kill(keyward, SIGKILL);
  waitpid(keyward, nullptr, 0);
  // The orphan is reparented and reaped by init (or a subreaper): gone either way.
  EXPECT_TRUE(Eventually([&] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    return line.find(") Z ") != std::string::npos;  // a zombie waiting for its new parent
  }));
  if (Alive(child)) kill(child, SIGKILL);
}

TEST(SupervisedProcessTest, ChildDiesWithAKilledParent) { ExpectChildDiesWithAKilledParent({}); }

// Changing ids clears the parent-death signal: it is set again after the switch.
TEST(SupervisedProcessTest, AccountChildDiesWithAKilledParentToo) {
  if (geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs root to switch to another account";
  ExpectChildDiesWithAKilledParent(MariadbOsAccount{"nobody", 65534, 65534, true});
}

// A missing program is reported by Start with the exec error.
TEST(SupervisedProcessTest, MissingProgramIsReported) {
  SupervisedProcessOptions o = Shell("");
  o.argv = {"/nonexistent/keyward-no-such-binary"};
  SupervisedProcess p(o);
  absl::Status st = p.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("No such file"), absl::string_view::npos) << st;
}

// keyward as root: the process runs as the account, switched before exec (root only).
TEST(SupervisedProcessTest, RunsAsTheAccountWithNoOtherGroup) {
  if (geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs root to switch to another account";
  SupervisedProcessOptions o = Shell("exec sleep 60");
  o.run_as = MariadbOsAccount{"nobody", 65534, 65534, true};
  SupervisedProcess p(o);
  ASSERT_TRUE(p.Start().ok());
  std::ifstream in("/proc/" + std::to_string(p.pid()) + "/status");
  std::string line, uid, gid, groups;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) uid = line;
    if (line.rfind("Gid:", 0) == 0) gid = line;
    if (line.rfind("Groups:", 0) == 0) groups = line;
  }
  EXPECT_EQ(uid, "Uid:\t65534\t65534\t65534\t65534");
  EXPECT_EQ(gid, "Gid:\t65534\t65534\t65534\t65534");
  EXPECT_EQ(groups.find_first_of("0123456789"), std::string::npos) << groups;
  p.Stop();
}

}  // namespace
}  // namespace keyward
