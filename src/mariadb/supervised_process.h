#pragma once
// A child process keyward starts, watches and stops: forked and exec'd (no fd of keyward's
// leaks into it: everything from fd 3 up is closed; PR_SET_PDEATHSIG sends it SIGTERM when
// keyward dies, even by SIGKILL, so it never serves on cached keys without keyward), its stdout and
// stderr forwarded line by line into keyward's log under the cluster's id, restarted with
// exponential backoff when it dies unasked (bounded: after `max_restarts` crashes in a row, each
// within `stable_after` of its start, it stays down and says so), and stopped with SIGTERM —
// SIGKILL only after `stop_grace`, logged.
//
// One thread per process waits for it (waitid, WNOWAIT first, so the pid cannot be reused
// between the exit and the bookkeeping) and restarts it; one reads its output. No lock is held
// while waiting for a process to start, become ready, or exit.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "mariadb/os_account.h"

namespace keyward {

struct SupervisedProcessOptions {
  std::string name;        // in logs and metrics: "mariadbd"
  std::string cluster_id;  // every log line carries it
  std::vector<std::string> argv;
  // What a restart after a crash runs instead, when set (a Galera node that bootstrapped its
  // cluster with --wsrep-new-cluster rejoins it without that argument).
  std::vector<std::string> restart_argv;
  // The account it runs as (switched to between fork and exec); drop = false: keyward's own.
  MariadbOsAccount run_as;
  // Returns once the freshly started process serves (OK), or why not. `running` turns false
  // when the process exits meanwhile: the check should give up at once then.
  std::function<absl::Status(pid_t pid, const std::function<bool()>& running)> ready;
  // Called with the pid right after every spawn (0 once it exited), before it can do anything
  // that needs to be recognised by pid (connect to the key service).
  std::function<void(pid_t pid)> on_pid;
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  int max_restarts = 10;
  std::chrono::milliseconds stable_after{60000};
  std::chrono::milliseconds stop_grace{120000};
};

class SupervisedProcess {
 public:
  explicit SupervisedProcess(SupervisedProcessOptions options);
  ~SupervisedProcess();  // Stop()
  SupervisedProcess(const SupervisedProcess&) = delete;
  SupervisedProcess& operator=(const SupervisedProcess&) = delete;

  // Spawns the process and waits until `ready` says it serves. On failure nothing is left
  // running, and the error carries the last lines the process wrote (its reason, usually).
  absl::Status Start();
  // SIGTERM, then waits up to stop_grace for it to exit (SIGKILL after that, logged). No restart
  // after this. Idempotent.
  void Stop();

  pid_t pid() const;
  // Restarts after crashes since Start.
  int restarts() const { return restarts_.load(); }
  // True once it crashed more often than allowed and stays down.
  bool gave_up() const { return gave_up_.load(); }
  // The last lines it wrote (at most 20), for error messages.
  std::string RecentOutput() const;

 private:
  absl::Status Spawn(bool restart = false);
  void Supervise();
  void ReadOutput(int fd);
  // Waits for the running child to exit; returns its wait status text.
  std::string WaitForExit(pid_t pid);
  // `pid` is the current process, not stopping, and has not exited (reaped or not).
  bool Running(pid_t pid);
  void JoinReader();

  const SupervisedProcessOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_once_ ABSL_GUARDED_BY(mu_) = false;  // it served once: crashes are restarted
  std::chrono::steady_clock::time_point started_at_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> recent_ ABSL_GUARDED_BY(mu_);
  std::thread supervisor_;
  std::thread reader_;  // the current process's output; joined before the next spawn
  std::atomic<int> restarts_{0};
  std::atomic<bool> gave_up_{false};
};

}  // namespace keyward
