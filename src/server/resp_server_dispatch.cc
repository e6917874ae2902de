// RespServer: parsing a connection's input into batches, answering reads from memory on the loop,
// handing the rest to the cluster executors and taking their replies back.
#include <chrono>
#include <string>
#include <string_view>

#include "server/resp_server.h"
#include "server/resp_server_internal.h"
#include "server/resp_writer.h"

namespace keyward {

using namespace resp_server_internal;  // NOLINT(google-build-using-namespace): this class's parts

void RespServer::Process(Connection& c) {
  if (c.busy) return;
  c.paused_for_output = false;
  if (c.session->close_after_reply) {
    c.in.clear();  // QUIT: nothing after it runs
    c.eof = true;
    return;
  }
  // Before AUTH: small limits on what is parsed and on unread replies, and one command per batch,
  // so the command after a successful AUTH is parsed with the full limits.
  const bool authed = c.authenticated;
  const size_t max_out =
      authed ? options_.max_pending_output : options_.max_pending_output_pre_auth;
  if (c.out.size() - c.out_offset >= max_out) {
    c.paused_for_output = true;  // Flush calls back once the client has read its replies
    return;
  }
  static const RespLimits kPreAuth = RespLimits::PreAuth();
  RespParser parser(authed ? options_.limits : kPreAuth);
  const size_t max_commands = authed ? kMaxBatchCommands : 1;
  // Batches that memory answers whole (server/inline_reads.h) are answered here, within a budget
  // per call; the first one that is not (or the budget's end) goes to the executor.
  const auto inline_deadline = std::chrono::steady_clock::now() + kInlineBudget;
  while (true) {
    std::unique_ptr<RespJob> job = ParseBatch(c, parser, max_commands);
    if (!job) break;
    if (authed && std::chrono::steady_clock::now() < inline_deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
          inline_deadline - std::chrono::steady_clock::now());
      c.executor->RunInline(*job, left);
      if (job->next == job->commands.size()) {
        if (c.out.empty()) {
          c.out.swap(job->out);
        } else {
          c.out += job->out;
        }
        if (c.out.size() - c.out_offset >= max_out) {
          c.paused_for_output = true;  // the rest once the client has read these (Flush)
          return;
        }
        continue;  // the next batch
      }
    }
    c.job_bytes = 0;
    for (size_t i = job->next; i < job->commands.size(); ++i) {
      for (const auto& a : job->commands[i]) c.job_bytes += a.size();
    }
    c.busy = true;
    // Submitted after this pass over the ready connections: one hand-off to the executor for
    // all of them (SubmitPending).
    pending_jobs_.emplace_back(c.executor, std::move(job));
    return;
  }
  if (!c.pending_error.empty()) {
    c.out += c.pending_error;
    c.pending_error.clear();
  }
}

std::unique_ptr<RespJob> RespServer::ParseBatch(Connection& c, RespParser& parser,
                                                size_t max_commands) {
  size_t pos = 0;
  std::string error;
  auto job = std::make_unique<RespJob>();
  while (pos < c.in.size() && job->commands.size() < max_commands &&
         (pos == 0 || pos < kMaxBatchBytes)) {
    size_t consumed = 0;
    std::vector<std::string> args;
    ParseOutcome r = parser.Parse(std::string_view(c.in).substr(pos), &consumed, &args, &error);
    if (r == ParseOutcome::kNeedMore) break;
    if (r == ParseOutcome::kProtocolError) {
      // Answered after the commands before it, then the connection closes.
      resp::Error(&c.pending_error, "ERR " + error);
      c.closing = true;
      c.eof = true;  // read nothing more
      pos = c.in.size();
      break;
    }
    pos += consumed;
    job->commands.push_back(std::move(args));
  }
  c.in.erase(0, pos);
  if (c.in.empty() && c.in.capacity() > (64 << 10)) std::string().swap(c.in);  // give back
  if (job->commands.empty()) return nullptr;
  job->fd = c.fd;
  job->connection_id = c.id;
  job->session = c.session;
  // Allocated here and freed here (OnJobsDone), not across threads; most replies fit.
  job->out.reserve(job->commands.size() * 32);
  job->max_out = options_.max_pending_output;
  return job;
}

void RespServer::SubmitPending() {
  for (size_t i = 0; i < pending_jobs_.size();) {
    ClusterExecutor* executor = pending_jobs_[i].first.get();
    std::vector<std::unique_ptr<RespJob>> jobs;
    for (size_t j = i; j < pending_jobs_.size(); ++j) {
      if (pending_jobs_[j].first.get() == executor && pending_jobs_[j].second) {
        jobs.push_back(std::move(pending_jobs_[j].second));
      }
    }
    executor->SubmitMany(std::move(jobs));
    while (i < pending_jobs_.size() && !pending_jobs_[i].second) ++i;
  }
  pending_jobs_.clear();
}

void RespServer::OnJobsDone() {
  std::vector<std::unique_ptr<RespJob>> jobs;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    jobs.swap(done_);
  }
  for (auto& job : jobs) {
    int fd = job->fd;
    if (fd < 0 || fd >= static_cast<int>(connections_.size()) || !connections_[fd] ||
        connections_[fd]->id != job->connection_id) {
      continue;  // the connection closed meanwhile
    }
    Connection& c = *connections_[fd];
    const uint64_t connection_id = job->connection_id;
    c.authenticated = c.session->authenticated;  // the executor is done with the session
    if (c.out.empty()) {
      c.out.swap(job->out);
    } else {
      c.out += job->out;
    }
    job->out.clear();
    if (job->next < job->commands.size()) {
      c.parked = std::move(job);  // its replies filled the buffer: the rest after Flush
    } else {
      c.busy = false;
      c.job_bytes = 0;
      if (c.session->close_after_reply) c.closing = true;
      Process(c);  // the next batch, or the pending protocol error
    }
    Flush(c);
    if (connections_[fd] && connections_[fd]->id == connection_id) {
      EnforceMemoryCap(*connections_[fd]);
    }
  }
}

}  // namespace keyward
