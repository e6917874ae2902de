#include "mariadb/supervised_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/metrics.h"

extern char** environ;

namespace keyward {
namespace {

constexpr size_t kRecentLines = 20;

metrics::CounterFamily& Restarts() {
  static auto& f = metrics::DefaultRegistry().AddCounter(
      "keyward_supervised_process_restarts_total",
      "Processes keyward supervises (mariadbd) restarted after they exited unasked.", {"process"});
  return f;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return absl::StrCat("ended with wait status ", status);
}

}  // namespace

SupervisedProcess::SupervisedProcess(SupervisedProcessOptions options)
    : options_(std::move(options)) {}

SupervisedProcess::~SupervisedProcess() { Stop(); }

pid_t SupervisedProcess::pid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pid_;
}

std::string SupervisedProcess::RecentOutput() const {
  std::lock_guard<std::mutex> lock(mu_);
  return absl::StrJoin(recent_, "\n");
}

absl::Status SupervisedProcess::Spawn(bool restart) {
  const std::vector<std::string>& args =
      restart && !options_.restart_argv.empty() ? options_.restart_argv : options_.argv;
  if (args.empty()) return absl::InvalidArgumentError("no program to run");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno)));
  }
  // Exec failures come back through this close-on-exec pipe (nothing read: exec succeeded).
  int err_fds[2];
  if (pipe2(err_fds, O_CLOEXEC) != 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(e)));
  }
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const MariadbOsAccount& run_as = options_.run_as;
  // fork, not posix_spawn: the child must set PR_SET_PDEATHSIG before exec, so a keyward killed
  // with SIGKILL takes its mariadbd down (SIGTERM: a clean shutdown) instead of leaving it
  // serving on keys it has cached. The signal follows the spawning *thread*, hence every spawn
  // happens on the supervisor thread, which outlives the process it started.
  pid_t pid = fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int e = 0;
    if (getppid() != parent) _exit(127);  // keyward died before the line above
    // Its own process group: a Ctrl-C meant for keyward does not stop it behind keyward's back
    // (keyward stops it, cleanly, as it shuts down). Default signal dispositions and mask.
    setpgid(0, 0);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0) {
      e = errno;
    } else {
      // Nothing else of keyward's (client sockets, RocksDB files, other clusters' pipes) leaks
      // in; the error pipe is close-on-exec, so it may stay until exec.
      if (err_fds[1] != 3 && dup2(err_fds[1], 3) >= 0) err_fds[1] = 3;
      close_range(4, ~0U, 0);
      fcntl(err_fds[1], F_SETFD, FD_CLOEXEC);
      // The unprivileged account (keyward as root): ids changed here, never in keyward. A
      // change of ids clears the parent-death signal, so it is set again after.
      if (int drop = DropToAccountInChild(run_as); drop != 0) {
        e = -drop;  // negative: the switch failed, not the exec
      } else {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127);
        execve(argv[0], argv.data(), environ);
        e = errno;
      }
    }
    ssize_t ignored = write(err_fds[1], &e, sizeof(e));
    (void)ignored;
    _exit(127);
  }
  int rc = pid < 0 ? errno : 0;
  close(fds[1]);
  close(err_fds[1]);
  if (rc == 0) {
    int child_errno = 0;
    ssize_t n;
    while ((n = read(err_fds[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR) {
    }
    if (n == sizeof(child_errno)) {
      rc = child_errno;
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  close(err_fds[0]);
  if (rc < 0) {
    close(fds[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", options_.argv[0], " as user ", run_as.name, " (uid ",
                     run_as.uid, "): switching to it failed: ", ErrnoText(-rc)));
  }
  if (rc != 0) {
    close(fds[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", args[0], ": ", ErrnoText(rc)));
  }
  if (options_.on_pid) options_.on_pid(pid);
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pid_ = pid;
    started_at_ = std::chrono::steady_clock::now();
    stopping = stopping_;
  }
  if (stopping) kill(pid, SIGKILL);  // Stop came while it started: it has done nothing yet
  JoinReader();
  reader_ = std::thread([this, fd = fds[0]] { ReadOutput(fd); });
  LogInfo(absl::StrCat(options_.name, ".started"),
          absl::StrCat("cluster ", options_.cluster_id, ": ", options_.name, " started, pid ", pid),
          {{"cluster_id", options_.cluster_id}, {"pid", pid}});
  return absl::OkStatus();
}

void SupervisedProcess::ReadOutput(int fd) {
  std::string pending;
  char buf[4096];
  auto emit = [&](std::string line) {
    if (line.empty()) return;
    // mariadbd tags its lines "[ERROR]", "[Warning]", "[Note]": keep the level.
    LogLevel level = absl::StrContains(line, "[ERROR]")     ? LogLevel::kError
                     : absl::StrContains(line, "[Warning]") ? LogLevel::kWarn
                                                            : LogLevel::kInfo;
    Log(level, absl::StrCat(options_.name, ".log"), line, {{"cluster_id", options_.cluster_id}});
    std::lock_guard<std::mutex> lock(mu_);
    recent_.push_back(std::move(line));
    if (recent_.size() > kRecentLines) recent_.erase(recent_.begin());
  };
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      emit(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
    if (pending.size() > 64 * 1024) emit(std::exchange(pending, ""));  // a runaway line
  }
  emit(pending);
  close(fd);
}

void SupervisedProcess::JoinReader() {
  if (reader_.joinable()) reader_.join();
}

std::string SupervisedProcess::WaitForExit(pid_t pid) {
  // WNOWAIT leaves the zombie in place: the pid cannot be reused before pid_ is cleared, so
  // Stop never signals a stranger.
  siginfo_t info{};
  while (waitid(P_PID, pid, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    pid_ = 0;
  }
  if (options_.on_pid) options_.on_pid(0);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  cv_.notify_all();
  return DescribeExit(status);
}

bool SupervisedProcess::Running(pid_t pid) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pid_ != pid || stopping_) return false;
  }
  // Exited but not reaped yet (WNOWAIT leaves that to WaitForExit): not running.
  siginfo_t info{};
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == 0;
}

absl::Status SupervisedProcess::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (supervisor_.joinable() || stopping_) {
      return absl::FailedPreconditionError("already started");
    }
  }
  // The first spawn too happens on the supervisor thread: the child's PR_SET_PDEATHSIG fires
  // when the thread that forked it ends, and the caller's thread may end any time.
  std::promise<absl::Status> spawned;
  std::future<absl::Status> spawn_result = spawned.get_future();
  // The supervisor restarts only a process that served once; one that dies on its first start
  // is a configuration error Start reports instead.
  supervisor_ = std::thread([this, &spawned] {
    absl::Status spawn_status = Spawn();
    bool ok = spawn_status.ok();
    spawned.set_value(std::move(spawn_status));
    if (ok) Supervise();
  });
  absl::Status st = spawn_result.get();
  if (!st.ok()) {
    supervisor_.join();
    return st;
  }
  pid_t pid = this->pid();
  auto running = [this, pid] { return Running(pid); };
  if (options_.ready) st = options_.ready(pid, running);
  if (st.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (pid_ != pid) st = absl::UnavailableError("it exited");
    ready_once_ = st.ok();
  }
  if (!st.ok()) {
    Stop();
    std::string output = RecentOutput();
    return absl::FailedPreconditionError(
        absl::StrCat(options_.name, " did not start: ", st.message(),
                     output.empty() ? "" : absl::StrCat("; its last words:\n", output)));
  }
  return absl::OkStatus();
}

void SupervisedProcess::Supervise() {
  int in_a_row = 0;
  for (;;) {
    pid_t pid = this->pid();
    if (pid == 0) return;
    std::string how = WaitForExit(pid);
    JoinReader();  // its last words are logged before anything else happens
    std::chrono::steady_clock::duration ran;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || !ready_once_) return;
      ran = std::chrono::steady_clock::now() - started_at_;
    }
    Restarts().WithLabels({options_.name})->Inc();
    in_a_row = ran < options_.stable_after ? in_a_row + 1 : 1;
    if (in_a_row > options_.max_restarts) {
      gave_up_ = true;
      LogError(absl::StrCat(options_.name, ".gave_up"),
               absl::StrCat("cluster ", options_.cluster_id, ": ", options_.name, " ", how,
                            "; it crashed ", in_a_row,
                            " times in a row soon after starting, so it is not restarted again "
                            "(its log lines are above; keyward retries the cluster at its storage "
                            "checks)"),
               {{"cluster_id", options_.cluster_id}});
      return;
    }
    auto backoff =
        std::min(options_.max_backoff, options_.first_backoff * (1 << std::min(in_a_row - 1, 16)));
    LogWarn(absl::StrCat(options_.name, ".crashed"),
            absl::StrCat("cluster ", options_.cluster_id, ": ", options_.name, " (pid ", pid, ") ",
                         how, "; restarting it in ", backoff.count(), " ms (restart ", in_a_row,
                         " of at most ", options_.max_restarts, " in a row)"),
            {{"cluster_id", options_.cluster_id}, {"pid", pid}});
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, backoff, [this] { return stopping_; })) return;
    }
    ++restarts_;
    absl::Status st = Spawn(/*restart=*/true);
    if (!st.ok()) {
      gave_up_ = true;
      LogError(absl::StrCat(options_.name, ".restart_failed"),
               absl::StrCat("cluster ", options_.cluster_id, ": ", st.message()),
               {{"cluster_id", options_.cluster_id}});
      return;
    }
    pid_t started = this->pid();
    if (options_.ready) {
      // This thread is the one that reaps: the check looks at the process itself.
      auto running = [this, started] { return Running(started); };
      st = options_.ready(started, running);
      if (!st.ok() && running()) {
        // Alive but not serving within the bound: treat it as a crash (killed, restarted).
        LogWarn(absl::StrCat(options_.name, ".not_ready"),
                absl::StrCat("cluster ", options_.cluster_id, ": ", options_.name,
                             " restarted but does not serve: ", st.message(), "; killing it"),
                {{"cluster_id", options_.cluster_id}});
        kill(started, SIGKILL);
      } else if (st.ok()) {
        LogInfo(absl::StrCat(options_.name, ".restarted"),
                absl::StrCat("cluster ", options_.cluster_id, ": ", options_.name,
                             " serves again (pid ", started, ")"),
                {{"cluster_id", options_.cluster_id}, {"pid", started}});
      }
    }
  }
}

void SupervisedProcess::Stop() {
  pid_t pid;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    pid = pid_;
  }
  cv_.notify_all();
  if (pid > 0) {
    kill(pid, SIGTERM);
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, options_.stop_grace, [this] { return pid_ == 0; })) {
      LogError(absl::StrCat(options_.name, ".killed"),
               absl::StrCat("cluster ", options_.cluster_id, ": ", options_.name, " (pid ", pid_,
                            ") did not stop within ", options_.stop_grace.count(),
                            " ms of SIGTERM; killed (SIGKILL): its next start runs crash recovery"),
               {{"cluster_id", options_.cluster_id}, {"pid", pid_}});
      kill(pid_, SIGKILL);
    }
  }
  if (supervisor_.joinable() && supervisor_.get_id() != std::this_thread::get_id()) {
    supervisor_.join();
  }
  JoinReader();
}

}  // namespace keyward
