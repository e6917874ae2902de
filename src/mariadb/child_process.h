#pragma once
// A child process keyward runs for a MariaDB job (mariadb-backup, mbstream), with pipes to its
// stdin and from its stdout, and its stderr kept (last lines only) for the error a user sees.
//
// The child waits, between fork and exec, until the parent has called Release(): a caller that
// must allow the child's pid on a MariadbKeyService (the plugin inside mariadb-backup asks for
// keys) allows it first, so the child's first key request cannot race the permission.
// PR_SET_PDEATHSIG (SIGKILL): the child dies with the thread that started it, so a keyward killed
// mid-job leaves no child behind; start and wait for it on the same thread.
//
// The child gets PR_SET_PDEATHSIG (SIGKILL): when keyward dies, even by SIGKILL, it dies too
// rather than run on as an orphan holding cluster files or keys. The signal follows the thread
// that called Start, so call Start from a thread that outlives the child (the job's own thread).
//
// Thread-compatible; the stderr reader is a thread of its own, joined by Wait/Kill/destructor.

#include <sys/types.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "mariadb/os_account.h"

namespace keyward {

class ChildProcess {
 public:
  struct Options {
    bool pipe_stdin = false;   // else /dev/null
    bool pipe_stdout = false;  // else /dev/null
    std::string cwd;           // empty: inherit
    // The account it runs as (switched to between fork and exec); drop = false: keyward's own.
    MariadbOsAccount run_as;
  };

  // Forks `argv` (argv[0] a path); the child is held before exec until Release().
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const Options& options);
  ~ChildProcess();  // Kills (SIGKILL) and reaps a child still running.
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Lets the child exec.
  absl::Status Release();
  // Our ends of the pipes (-1 when not piped). CloseStdin signals EOF to the child.
  int stdin_fd() const { return stdin_fd_; }
  int stdout_fd() const { return stdout_fd_; }
  void CloseStdin();
  // Writes all of `data` to the child's stdin (EPIPE: the child is gone).
  absl::Status WriteStdin(std::string_view data);
  // Reads up to `size` bytes from stdout; 0 at EOF.
  absl::StatusOr<size_t> ReadStdout(char* out, size_t size);

  // Waits for the exit; OK only for exit status 0, else an error naming `what`, how it ended,
  // and the last lines of its stderr.
  absl::Status Wait(const std::string& what);
  // SIGKILL and reap (idempotent).
  void Kill();
  // The last lines the child wrote to stderr (bounded).
  std::string StderrTail() const;
  // The last 16 KiB of its stderr, as written (for output to parse).
  std::string StderrText() const;

 private:
  ChildProcess() = default;
  void ReadStderr(int fd);
  void JoinStderr();

  pid_t pid_ = -1;
  bool reaped_ = false;
  int go_fd_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::thread stderr_thread_;
  mutable std::mutex mu_;
  std::string stderr_tail_ ABSL_GUARDED_BY(mu_);
};

}  // namespace keyward
