#pragma once
// One cluster's serial executor: the cluster's commands run in submission order, never two at a
// time, on a shared WorkerPool, one bounded round per pool task.
//
// A round takes every job queued (one job = one connection's batch of pipelined commands), runs
// them for at most kRoundBudget (a job cut off mid-way, or a multi-step command such as KEYS or
// FLUSHDB, continues in the next round, before anything queued later), then yields the worker:
// a cluster with more work queues itself behind the other clusters, so none occupies more than
// its share of the pool.
//
// Group commit: writes never sync on their own (WriteOptions sync=false) and their WAL records
// stay in RocksDB's buffer (manual_wal_flush); at the end of a round that wrote anything the
// buffer goes to the OS in one write and, for a cluster whose durability is `always`, is synced
// once; only then are the replies of the round released, reads included (they may have seen
// those writes). Writes of concurrent and pipelined clients that arrive during a sync are the
// next round's: one fsync covers all of them. `everysec` and `none` do not wait for a sync.

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/commands.h"
#include "server/worker_pool.h"
#include "util/metrics.h"

namespace keyward {

// A cluster's Redis series: keyward_redis_commands_total{cluster,command},
// keyward_redis_connections{cluster}, keyward_wal_syncs_total{cluster}.
struct RedisClusterMetrics {
  explicit RedisClusterMetrics(std::string id);
  // On the cluster's executor only (rounds are serial): an array index and a relaxed atomic add.
  void Count(size_t command);
  // Drops every series of `cluster_id` from the output (it is no longer served).
  static void RemoveSeries(const std::string& cluster_id);
  static void Register();  // lists the families (HELP and TYPE) before any cluster exists

  std::string cluster_id;
  std::shared_ptr<metrics::Gauge> connections;
  std::shared_ptr<metrics::Counter> wal_syncs;
  std::vector<std::shared_ptr<metrics::Counter>> commands;  // by command id, filled on first use
};

// One connection's batch of pipelined commands and, once run, their replies. When the
// connection closes (session->cancelled) the commands not yet started are dropped: the job comes
// back with `next` == commands.size() and the replies of what ran; writes that ran complete
// (they are in the round's group commit) like any other.
struct RespJob {
  int fd = -1;
  uint64_t connection_id = 0;  // the I/O thread drops replies for a connection that has gone
  std::shared_ptr<Session> session;
  std::vector<std::vector<std::string>> commands;
  size_t next = 0;            // the first command not finished
  bool step_started = false;  // commands[next] is a multi-step command under way
  std::string out;            // replies, released together when the job is done
  // A job whose replies reach this many bytes is handed back at the next command boundary with
  // `next` < commands.size(): the loop sends what is there and resubmits the rest once the
  // client has read it, so a pipeline of big replies (GET of a 64 MiB value × 1,024) never
  // builds up in memory.
  size_t max_out = size_t{64} << 20;
};

class ClusterExecutor : public std::enable_shared_from_this<ClusterExecutor> {
 public:
  static constexpr std::chrono::microseconds kRoundBudget{4000};
  // `done` gets the finished jobs of a round, on the worker that ran it.
  using Done = std::function<void(std::vector<std::unique_ptr<RespJob>>)>;

  ClusterExecutor(WorkerPool& pool, std::shared_ptr<ClusterEndpoint> endpoint,
                  std::shared_ptr<RedisClusterMetrics> metrics, Done done,
                  std::chrono::microseconds round_budget = kRoundBudget);

  // Runs the leading commands of `job` that memory answers (server/inline_reads.h) here, on the
  // calling thread (the RESP server's I/O thread), if the cluster has nothing queued or running:
  // it then acts as the cluster's executor for at most `budget`, so the order of the cluster's
  // commands and what they see are as if a round had run them (a read never sees a write whose
  // round has not released its replies). Returns how many commands it ran; the rest of the job,
  // if any, goes to Submit as usual. Never from a worker.
  size_t RunInline(RespJob& job, std::chrono::microseconds budget);
  void Submit(std::unique_ptr<RespJob> job);
  void SubmitMany(std::vector<std::unique_ptr<RespJob>> jobs);  // in order
  // Runs `fn` on the executor before the next round, when none of the cluster's commands runs,
  // and returns once it has. Not from a worker thread.
  void RunExclusive(std::function<void()> fn);
  // Drops queued jobs and refuses new ones; returns once no round runs or will run.
  void Close();

  const std::shared_ptr<ClusterEndpoint>& endpoint() const { return endpoint_; }
  const std::shared_ptr<RedisClusterMetrics>& metrics() const { return metrics_; }

 private:
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunRound();
  bool RunOneRound();  // true: run another round at once
  // Hands a round's WAL records to the OS (one write) and syncs them if `sync`; turns the write
  // replies into errors if that failed.
  struct WriteReply {
    RespJob* job;
    size_t begin, end;
    bool failed = false;  // its write batch failed: the reply becomes `error`
    std::string error;    // the RESP error text (StorageErrorText) when failed
  };
  struct PendingPuts {
    std::vector<std::pair<std::string, StoredValue>> entries;
    std::vector<size_t> replies;  // indices into the round's WriteReply list
  };
  void GroupCommit(std::vector<WriteReply>& writes, bool sync);
  // A plain SET or an MSET (a write that reads nothing) joins `puts` and answers +OK, to be
  // applied with the others in one write batch (ApplyPuts) before anything reads.
  bool GatherBlindWrite(RespJob& job, PendingPuts* puts);
  void ApplyPuts(PendingPuts* puts, std::vector<WriteReply>* writes);

  WorkerPool& pool_;
  const std::shared_ptr<ClusterEndpoint> endpoint_;  // fields change only in RunExclusive tasks
  const std::shared_ptr<RedisClusterMetrics> metrics_;
  const Done done_;
  const std::chrono::microseconds round_budget_;
  std::mutex mu_;
  std::deque<std::unique_ptr<RespJob>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> exclusive_ ABSL_GUARDED_BY(mu_);
  // A round is queued in the pool or running, or RunInline runs: whoever set it is the cluster's
  // executor until it clears it.
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace keyward
