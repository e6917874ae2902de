#include "server/cluster_executor.h"

#include <algorithm>
#include <cstdio>
#include <future>

#include "absl/strings/match.h"
#include "server/inline_reads.h"
#include "server/resp_writer.h"
#include "util/log.h"

namespace keyward {

namespace {

metrics::CounterFamily& CommandsFamily() {
  static auto& f = metrics::DefaultRegistry().AddCounter(
      "keyward_redis_commands_total",
      "Redis commands received, by cluster and lower-case command (\"unknown\" for any other).",
      {"cluster", "command"});
  return f;
}

metrics::GaugeFamily& ConnectionsFamily() {
  static auto& f = metrics::DefaultRegistry().AddGauge(
      "keyward_redis_connections", "Open Redis client connections, by cluster.", {"cluster"});
  return f;
}

metrics::CounterFamily& WalSyncsFamily() {
  static auto& f = metrics::DefaultRegistry().AddCounter(
      "keyward_wal_syncs_total",
      "Write-ahead log syncs (fsync) made for acknowledged writes, by cluster: one per round of "
      "writes under durability always (keyward_redis_commands_total / this = writes per sync).",
      {"cluster"});
  return f;
}

constexpr char kNotDurable[] =
    "ERR the write was applied but writing or syncing the write-ahead log failed, so it may not "
    "be durable (a crash or power failure can lose it); see the server log";

size_t CommandIndex(const char* name) {
  const auto& names = CommandNames();
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

}  // namespace

RedisClusterMetrics::RedisClusterMetrics(std::string id)
    : cluster_id(std::move(id)),
      connections(ConnectionsFamily().WithLabels({cluster_id})),
      wal_syncs(WalSyncsFamily().WithLabels({cluster_id})),
      commands(CommandNames().size()) {}

void RedisClusterMetrics::Count(size_t command) {
  auto& counter = commands[command];
  if (!counter) counter = CommandsFamily().WithLabels({cluster_id, CommandNames()[command]});
  counter->Inc();
}

void RedisClusterMetrics::RemoveSeries(const std::string& cluster_id) {
  CommandsFamily().RemoveWhere(0, cluster_id);
  ConnectionsFamily().RemoveWhere(0, cluster_id);
  WalSyncsFamily().RemoveWhere(0, cluster_id);
}

void RedisClusterMetrics::Register() {
  CommandsFamily();
  ConnectionsFamily();
  WalSyncsFamily();
}

ClusterExecutor::ClusterExecutor(WorkerPool& pool, std::shared_ptr<ClusterEndpoint> endpoint,
                                 std::shared_ptr<RedisClusterMetrics> metrics, Done done,
                                 std::chrono::microseconds round_budget)
    : pool_(pool),
      endpoint_(std::move(endpoint)),
      metrics_(std::move(metrics)),
      done_(std::move(done)),
      round_budget_(round_budget) {}

void ClusterExecutor::ScheduleLocked() {
  if (scheduled_) return;
  scheduled_ = true;
  pool_.Post([self = shared_from_this()] { self->RunRound(); });
}

size_t ClusterExecutor::RunInline(RespJob& job, std::chrono::microseconds budget) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || scheduled_ || !jobs_.empty() || !exclusive_.empty()) return 0;
    scheduled_ = true;  // no round starts until this ends
  }
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + budget;
  size_t ran = 0;
  while (job.next < job.commands.size() && !job.step_started) {
    size_t command = 0;
    if (!AnswerFromMemory(*endpoint_, *job.session, job.commands[job.next], &job.out, &command)) {
      break;
    }
    metrics_->Count(command);
    ++job.next;
    ++ran;
    // Same reply cap as a worker's round: big cached values must not pile up on the I/O thread.
    if (job.out.size() >= job.max_out) break;
    if (ran % 8 == 0 && Clock::now() >= deadline) break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  scheduled_ = false;
  // RunExclusive (from another thread) may have queued work meanwhile.
  if (!exclusive_.empty() || !jobs_.empty()) ScheduleLocked();
  return ran;
}

void ClusterExecutor::Submit(std::unique_ptr<RespJob> job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;  // the cluster is gone and so is the connection
  jobs_.push_back(std::move(job));
  ScheduleLocked();
}

void ClusterExecutor::SubmitMany(std::vector<std::unique_ptr<RespJob>> jobs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  for (auto& j : jobs) jobs_.push_back(std::move(j));
  ScheduleLocked();
}

void ClusterExecutor::RunExclusive(std::function<void()> fn) {
  auto done = std::make_shared<std::promise<void>>();
  auto ran = done->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      // No round runs or will run: nothing can race with fn.
      fn();
      return;
    }
    exclusive_.push_back([fn = std::move(fn), done] {
      fn();
      done->set_value();
    });
    ScheduleLocked();
  }
  ran.wait();
}

void ClusterExecutor::Close() {
  RunExclusive([this] {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    jobs_.clear();
  });
}

void ClusterExecutor::RunRound() {
  while (RunOneRound()) {
  }
}

bool ClusterExecutor::RunOneRound() {
  std::vector<std::function<void()>> exclusive;
  std::deque<std::unique_ptr<RespJob>> round;
  {
    std::lock_guard<std::mutex> lock(mu_);
    exclusive.swap(exclusive_);
  }
  for (auto& fn : exclusive) fn();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      jobs_.clear();
      // An exclusive task queued after Close ran inline; nothing else is left.
      scheduled_ = false;
      return false;
    }
    round.swap(jobs_);
  }

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + round_budget_;
  const bool sync = endpoint_->durability == Durability::kAlways;
  bool wrote = false;
  std::vector<WriteReply> writes;
  std::vector<std::unique_ptr<RespJob>> finished;
  bool out_of_time = false;
  int since_clock = 0;
  // Runs of plain SETs and MSETs (blind writes) go to RocksDB as one write batch: applied before
  // the next other command of the round (which may read them) or at the round's end.
  PendingPuts puts;
  while (!round.empty() && !out_of_time) {
    RespJob& job = *round.front();
    bool handed_back = false;
    while (job.next < job.commands.size()) {
      if (!job.step_started && job.session->cancelled.load(std::memory_order_relaxed)) {
        // Its connection closed: nobody reads the rest's replies. A command under way (a step of
        // KEYS or FLUSHDB) finishes first, so nothing stops half-done.
        job.next = job.commands.size();
        break;
      }
      size_t begin = job.out.size();
      if (!job.step_started && GatherBlindWrite(job, &puts)) {
        wrote = true;
        writes.push_back({&job, begin, job.out.size(), false, {}});
        puts.replies.push_back(writes.size() - 1);
        ++job.next;
        if (++since_clock % 8 == 0 && Clock::now() >= deadline) {
          out_of_time = true;
          break;
        }
        continue;
      }
      ApplyPuts(&puts, &writes);
      CommandResult r =
          ExecuteCommandStep(*endpoint_, *job.session, job.commands[job.next], &job.out);
      if (!job.step_started) metrics_->Count(r.command);
      if (r.wrote) {
        wrote = true;
        if (job.out.size() > begin) writes.push_back({&job, begin, job.out.size(), false, {}});
      }
      job.step_started = r.more;
      if (!r.more) {
        ++job.next;
        // QUIT: nothing after it runs (the connection closes once the reply is out).
        if (job.session->close_after_reply) job.next = job.commands.size();
        if (job.out.size() >= job.max_out) {
          handed_back = true;  // the rest runs once the client has read these replies
          break;
        }
      }
      // The clock is read after every step of a long command and every 8th short one.
      if ((r.more || ++since_clock % 8 == 0) && Clock::now() >= deadline) {
        out_of_time = true;
        break;
      }
    }
    if (job.next == job.commands.size() || handed_back) {
      finished.push_back(std::move(round.front()));
      round.pop_front();
    }
  }

  ApplyPuts(&puts, &writes);
  if (wrote && endpoint_->store) GroupCommit(writes, sync);
  if (!finished.empty()) done_(std::move(finished));

  std::lock_guard<std::mutex> lock(mu_);
  // What the round did not reach goes first in the next round, in order.
  while (!round.empty()) {
    jobs_.push_front(std::move(round.back()));
    round.pop_back();
  }
  if (closed_) {
    jobs_.clear();
  } else if (!jobs_.empty() || !exclusive_.empty()) {
    // Another round: at once on this worker if no other cluster waits for one (saves a thread
    // hand-off), else behind every round already queued.
    if (pool_.NoneWaiting()) return true;
    scheduled_ = false;
    ScheduleLocked();
    return false;
  }
  scheduled_ = false;
  return false;
}

bool ClusterExecutor::GatherBlindWrite(RespJob& job, PendingPuts* puts) {
  static const size_t kSet = CommandIndex("set");
  static const size_t kMSet = CommandIndex("mset");
  std::vector<std::string>& args = job.commands[job.next];
  if (!job.session->authenticated || !endpoint_->store || args.size() < 3) return false;
  bool set = args.size() == 3 && absl::EqualsIgnoreCase(args[0], "set");
  bool mset = !set && args.size() % 2 == 1 && absl::EqualsIgnoreCase(args[0], "mset");
  if (!set && !mset) return false;
  // The arguments are not needed after this: moved, not copied.
  for (size_t i = 1; i + 1 < args.size(); i += 2) {
    puts->entries.emplace_back(std::move(args[i]), StoredValue{std::move(args[i + 1]), 0});
  }
  metrics_->Count(set ? kSet : kMSet);
  job.out.append("+OK\r\n");
  return true;
}

void ClusterExecutor::ApplyPuts(PendingPuts* puts, std::vector<WriteReply>* writes) {
  if (puts->entries.empty()) return;
  absl::Status st = endpoint_->store->PutMany(puts->entries);
  if (!st.ok()) {
    LogWarn("cluster.storage_error", std::string(st.message()),
            {{"cluster_id", endpoint_->cluster_id}});
    const std::string error = StorageErrorText(st);
    for (size_t i : puts->replies) {
      (*writes)[i].failed = true;
      (*writes)[i].error = error;
    }
  }
  puts->entries.clear();
  puts->replies.clear();
}

void ClusterExecutor::GroupCommit(std::vector<WriteReply>& writes, bool sync) {
  // The store buffers WAL records (manual_wal_flush): the round's writes reach the OS here, in
  // one write, and are synced under durability always.
  absl::Status st = endpoint_->store->FlushWal(sync);
  if (sync) metrics_->wal_syncs->Inc();
  if (!st.ok()) {
    LogWarn("cluster.storage_error", std::string(st.message()),
            {{"cluster_id", endpoint_->cluster_id}});
  }
  // Back to front, so the offsets of a job's earlier replies stay valid.
  for (auto it = writes.rbegin(); it != writes.rend(); ++it) {
    std::string& out = it->job->out;
    std::string err;
    if (it->failed) {
      resp::Error(&err, it->error);
    } else if (!st.ok() && out[it->begin] != '-') {  // an error acknowledged nothing
      // A full disk or a read-only (degraded) store say so, with what to do; anything else is
      // the generic warning.
      const bool known = absl::IsResourceExhausted(st) || absl::IsUnavailable(st);
      resp::Error(&err, known ? StorageErrorText(st) : std::string(kNotDurable));
    } else {
      continue;
    }
    out.replace(it->begin, it->end - it->begin, err);
  }
}

}  // namespace keyward
