#include "mariadb/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "util/file_util.h"

namespace keyward {
namespace {

// How much of a child's stderr is kept for error messages.
constexpr size_t kChildStderrTailBytes = 16384;
constexpr size_t kChildStderrTailLines = 4;

void ChildCloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& args, const Options& options) {
  if (args.empty()) return absl::InvalidArgumentError("no program to run");
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string cwd = options.cwd;
  const MariadbOsAccount run_as = options.run_as;

  // [0] read end, [1] write end; every descriptor close-on-exec (dup2 clears it on 0-2).
  int go[2] = {-1, -1}, in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {go, in, out, err}) {
      ChildCloseFd(p[0]);
      ChildCloseFd(p[1]);
    }
  };
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
      (options.pipe_stdin && pipe2(in, O_CLOEXEC) != 0) ||
      (options.pipe_stdout && pipe2(out, O_CLOEXEC) != 0)) {
    int e = errno;
    close_all();
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(e)));
  }
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only. It dies with the thread that started it (a keyward
    // killed mid-backup leaves no mariadb-backup or mbstream behind); a parent already gone
    // before prctl took effect is caught by the getppid check.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    char b;
    if (read(go[0], &b, 1) != 1) _exit(127);
    dup2(options.pipe_stdin ? in[0] : devnull, STDIN_FILENO);
    dup2(options.pipe_stdout ? out[1] : devnull, STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    // Its own process group: Kill and Wait also end what it started (a script's children would
    // otherwise hold its stderr open and outlive the job).
    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    if (DropToAccountInChild(run_as) != 0) {
      static const char kMsg[] = "keyward: cannot switch to the MariaDB OS account\n";
      ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
      (void)ignored;
      _exit(126);
    }
    // A change of ids clears the parent-death signal (kernel commit_creds): set it again.
    if (run_as.drop) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  int fork_errno = errno;
  if (devnull >= 0) close(devnull);
  if (pid < 0) {
    close_all();
    return absl::InternalError(absl::StrCat("fork: ", ErrnoText(fork_errno)));
  }
  setpgid(pid, pid);  // as the child does: whichever runs first
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->go_fd_ = go[1];
  ChildCloseFd(go[0]);
  ChildCloseFd(in[0]);
  ChildCloseFd(out[1]);
  ChildCloseFd(err[1]);
  child->stdin_fd_ = in[1];
  child->stdout_fd_ = out[0];
  int err_fd = err[0];
  child->stderr_thread_ = std::thread([c = child.get(), err_fd] { c->ReadStderr(err_fd); });
  return child;
}

ChildProcess::~ChildProcess() {
  Kill();
  ChildCloseFd(go_fd_);
  ChildCloseFd(stdin_fd_);
  ChildCloseFd(stdout_fd_);
}

absl::Status ChildProcess::Release() {
  char b = 1;
  bool ok = go_fd_ >= 0 && write(go_fd_, &b, 1) == 1;
  ChildCloseFd(go_fd_);
  if (!ok) return absl::InternalError("cannot release the child process");
  return absl::OkStatus();
}

void ChildProcess::CloseStdin() { ChildCloseFd(stdin_fd_); }

absl::Status ChildProcess::WriteStdin(std::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = write(stdin_fd_, data.data() + sent, data.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("write to child: ", ErrnoText(errno)));
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> ChildProcess::ReadStdout(char* out, size_t size) {
  for (;;) {
    ssize_t n = read(stdout_fd_, out, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("read from child: ", ErrnoText(errno)));
    return static_cast<size_t>(n);
  }
}

void ChildProcess::ReadStderr(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::lock_guard<std::mutex> lock(mu_);
    stderr_tail_.append(buf, static_cast<size_t>(n));
    if (stderr_tail_.size() > kChildStderrTailBytes) {
      stderr_tail_.erase(0, stderr_tail_.size() - kChildStderrTailBytes);
    }
  }
  close(fd);
}

void ChildProcess::JoinStderr() {
  if (stderr_thread_.joinable()) stderr_thread_.join();
}

std::string ChildProcess::StderrText() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stderr_tail_;
}

std::string ChildProcess::StderrTail() const {
  std::string all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all = stderr_tail_;
  }
  std::vector<std::string> lines = absl::StrSplit(all, '\n', absl::SkipWhitespace());
  size_t from = lines.size() > kChildStderrTailLines ? lines.size() - kChildStderrTailLines : 0;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i)
    absl::StrAppend(&out, i > from ? " | " : "", lines[i]);
  return out;
}

absl::Status ChildProcess::Wait(const std::string& what) {
  ChildCloseFd(go_fd_);  // a child never released exits (127) instead of waiting forever
  int status = 0;
  if (!reaped_) {
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    kill(-pid_, SIGKILL);  // leftovers of its process group
  }
  JoinStderr();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  std::string how = WIFEXITED(status) ? absl::StrCat("exit status ", WEXITSTATUS(status))
                                      : absl::StrCat("signal ", WTERMSIG(status));
  return absl::InternalError(absl::StrCat(what, " ended with ", how, ": ", StderrTail()));
}

void ChildProcess::Kill() {
  if (pid_ > 0 && !reaped_) {
    kill(-pid_, SIGKILL);  // the group (setpgid in the child)...
    kill(pid_, SIGKILL);   // ...and the child itself, should it not have reached setpgid yet
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  JoinStderr();
}

}  // namespace keyward
