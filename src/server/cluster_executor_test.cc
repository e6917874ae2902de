#include "server/cluster_executor.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class ClusterExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-exec-" + *RandomHex(6));
    fs::create_directories(root_);
    auto p = EscrowProvider::LoadOrCreate((root_ / "escrow.key").string());
    ASSERT_TRUE(p.ok()) << p.status();
    escrow_ = *std::move(p);
    shared_ = SharedStorageResources::New(8 << 20, 16 << 20);
  }
  void TearDown() override {
    executors_.clear();
    fs::remove_all(root_);
  }

  // A cluster with its own store and executor on `pool`; finished jobs go to done_.
  std::shared_ptr<ClusterExecutor> NewCluster(
      WorkerPool& pool, const std::string& id, Durability durability,
      std::chrono::microseconds round_budget = ClusterExecutor::kRoundBudget) {
    ClusterStoreOptions o;
    o.dir = (root_ / id).string();
    o.cluster_id = id;
    auto store = ClusterStore::Create(o, *escrow_, shared_);
    EXPECT_TRUE(store.ok()) << store.status();
    auto ep = std::make_shared<ClusterEndpoint>();
    ep->cluster_id = id + "-" + *RandomHex(4);  // metrics series unique to this test
    ep->store = std::shared_ptr<ClusterStore>(*std::move(store));
    ep->durability = durability;
    auto e = std::make_shared<ClusterExecutor>(
        pool, ep, std::make_shared<RedisClusterMetrics>(ep->cluster_id),
        [this](std::vector<std::unique_ptr<RespJob>> jobs) {
          std::lock_guard<std::mutex> lock(mu_);
          for (auto& j : jobs) done_.push_back(std::move(j));
          cv_.notify_all();
        },
        round_budget);
    executors_.push_back(e);
    return e;
  }

  std::unique_ptr<RespJob> Job(uint64_t id, std::vector<std::vector<std::string>> commands) {
    auto j = std::make_unique<RespJob>();
    j->connection_id = id;
    j->session = std::make_shared<Session>();
    j->session->authenticated = true;
    j->commands = std::move(commands);
    return j;
  }

  void WaitForJobs(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(60), [&] { return done_.size() >= n; }));
  }

  // Holds the pool's only worker until Release(), so the rounds queued meanwhile run in order.
  void Block(WorkerPool& pool) {
    pool.Post([this] {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return released_; });
    });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  fs::path root_;
  std::unique_ptr<EscrowProvider> escrow_;
  std::shared_ptr<SharedStorageResources> shared_;
  std::vector<std::shared_ptr<ClusterExecutor>> executors_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  std::vector<std::unique_ptr<RespJob>> done_;
};

TEST_F(ClusterExecutorTest, LongKeysYieldsTheOnlyWorkerToAnotherCluster) {
  WorkerPool pool(1);
  auto a = NewCluster(pool, "a", Durability::kNone);
  auto b = NewCluster(pool, "b", Durability::kNone);
  std::vector<std::pair<std::string, StoredValue>> entries;
  for (int i = 0; i < 60000; ++i) entries.push_back({"key:" + std::to_string(i), {"v", 0}});
  ASSERT_TRUE(a->endpoint()->store->PutMany(entries).ok());

  Block(pool);
  a->Submit(Job(1, {{"KEYS", "*"}}));  // many steps: longer than one round
  b->Submit(Job(2, {{"PING"}}));
  Release();
  WaitForJobs(2);
  pool.Stop();
  // B was answered while A's KEYS was still going: A's round yielded the worker.
  EXPECT_EQ(done_[0]->connection_id, 2u);
  EXPECT_EQ(done_[0]->out, "+PONG\r\n");
  EXPECT_EQ(done_[1]->connection_id, 1u);
  EXPECT_EQ(done_[1]->out.substr(0, 8), "*60000\r\n");
}

TEST_F(ClusterExecutorTest, OneWalSyncPerRoundUnderDurabilityAlwaysNoneUnderNone) {
  WorkerPool pool(1);
  // A budget no round of 100 commands reaches, even under ASan: one round takes them all.
  auto always = NewCluster(pool, "always", Durability::kAlways, std::chrono::seconds(30));
  auto none = NewCluster(pool, "none", Durability::kNone);
  Block(pool);
  for (uint64_t i = 0; i < 50; ++i) {
    always->Submit(Job(i, {{"SET", "k" + std::to_string(i), "v"}, {"INCR", "n"}}));
    none->Submit(Job(100 + i, {{"SET", "k" + std::to_string(i), "v"}}));
  }
  Release();
  WaitForJobs(100);
  // All 100 writes of the always cluster were gathered by one round: one sync.
  EXPECT_EQ(always->metrics()->wal_syncs->Value(), 1u);
  EXPECT_EQ(none->metrics()->wal_syncs->Value(), 0u);
  // Replies in submission order: the INCRs count 1..50.
  int expected = 1;
  for (auto& j : done_) {
    if (j->connection_id >= 100) continue;
    EXPECT_EQ(j->out, "+OK\r\n:" + std::to_string(expected++) + "\r\n");
  }
  // A round with reads only does not sync.
  always->Submit(Job(200, {{"GET", "k1"}}));
  WaitForJobs(101);
  EXPECT_EQ(always->metrics()->wal_syncs->Value(), 1u);
}

TEST_F(ClusterExecutorTest, BatchedBlindWritesAreSeenByTheCommandsAfterThem) {
  WorkerPool pool(1);
  auto e = NewCluster(pool, "blind", Durability::kAlways, std::chrono::seconds(30));
  Block(pool);
  e->Submit(Job(1, {{"SET", "a", "1"}, {"MSET", "b", "2", "c", "3"}, {"GET", "a"}}));
  e->Submit(Job(2, {{"set", "a", "x"}, {"APPEND", "a", "y"}, {"MSET", "b"}, {"GET", "c"}}));
  e->Submit(Job(3, {{"SET", "d", "4"}}));
  auto unauthenticated = Job(4, {{"SET", "e", "5"}});
  unauthenticated->session->authenticated = false;
  e->Submit(std::move(unauthenticated));
  Release();
  WaitForJobs(4);
  EXPECT_EQ(done_[0]->out, "+OK\r\n+OK\r\n$1\r\n1\r\n");
  EXPECT_EQ(done_[1]->out,
            "+OK\r\n:2\r\n-ERR wrong number of arguments for 'mset' command\r\n$1\r\n3\r\n");
  EXPECT_EQ(done_[2]->out, "+OK\r\n");
  EXPECT_EQ(done_[3]->out.substr(0, 7), "-NOAUTH");
  auto d = e->endpoint()->store->Get("d");  // applied at the round's end
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->data, "4");
  EXPECT_EQ(e->metrics()->wal_syncs->Value(), 1u);
}

TEST_F(ClusterExecutorTest, CloseDropsQueuedJobsAndRunExclusiveWaitsForTheRound) {
  WorkerPool pool(2);
  auto e = NewCluster(pool, "close", Durability::kNone);
  bool ran = false;
  e->RunExclusive([&] { ran = true; });
  EXPECT_TRUE(ran);
  e->Submit(Job(1, {{"SET", "a", "1"}}));
  WaitForJobs(1);
  e->Close();
  e->Submit(Job(2, {{"SET", "b", "2"}}));  // dropped: the cluster is gone
  ran = false;
  e->RunExclusive([&] { ran = true; });  // runs inline once closed
  EXPECT_TRUE(ran);
  pool.Stop();
  EXPECT_EQ(done_.size(), 1u);
}

TEST_F(ClusterExecutorTest, ClosedConnectionsCommandsNotYetStartedAreDropped) {
  WorkerPool pool(1);
  // A zero budget: a round stops after 8 commands (the clock is read every 8th), so the job
  // below spans rounds.
  auto e = NewCluster(pool, "cancel", Durability::kAlways, std::chrono::microseconds(0));
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < 20; ++i) sets.push_back({"SET", "k" + std::to_string(i), "v"});
  Block(pool);
  auto job = Job(1, sets);
  std::shared_ptr<Session> session = job->session;
  e->Submit(std::move(job));
  auto gone = Job(2, {{"SET", "gone", "1"}});
  gone->session->cancelled = true;  // closed before its batch started
  e->Submit(std::move(gone));
  // Runs after the first round (which requeues itself behind it): the connection closes.
  pool.Post([session] { session->cancelled = true; });
  Release();
  WaitForJobs(2);
  pool.Stop();
  // The first round's 8 writes completed (applied and synced, acknowledged); the other 12 of
  // the closed connection and all of the other closed one never ran.
  ASSERT_EQ(done_.size(), 2u);
  EXPECT_EQ(done_[0]->next, 20u);
  std::string eight;
  for (int i = 0; i < 8; ++i) eight += "+OK\r\n";
  EXPECT_EQ(done_[0]->out, eight);
  EXPECT_EQ(done_[1]->out, "");
  for (int i = 0; i < 20; ++i) {
    auto v = e->endpoint()->store->Get("k" + std::to_string(i));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->has_value(), i < 8) << i;
  }
  auto g = e->endpoint()->store->Get("gone");
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(g->has_value());
  EXPECT_EQ(e->metrics()->wal_syncs->Value(), 1u);
}

TEST_F(ClusterExecutorTest, RunInlineAnswersReadsFromMemoryAndLeavesTheRestInOrder) {
  WorkerPool pool(1);
  auto e = NewCluster(pool, "inline", Durability::kAlways);
  ASSERT_TRUE(e->endpoint()->store->PutMany({{"a", {"1", 0}}, {"b", {"22", 0}}}).ok());
  auto job = Job(1, {{"GET", "a"},
                     {"mget", "a", "x", "b"},
                     {"EXISTS", "a", "x", "b"},
                     {"STRLEN", "b"},
                     {"TTL", "a"},
                     {"PING"},
                     {"INCR", "n"},  // a write: the executor's
                     {"GET", "a"}});
  EXPECT_EQ(e->RunInline(*job, std::chrono::seconds(10)), 6u);
  EXPECT_EQ(job->next, 6u);
  EXPECT_EQ(job->out,
            "$1\r\n1\r\n*3\r\n$1\r\n1\r\n$-1\r\n$2\r\n22\r\n:2\r\n:2\r\n:-1\r\n+PONG\r\n");
  e->Submit(std::move(job));
  WaitForJobs(1);
  EXPECT_EQ(done_[0]->out.substr(done_[0]->out.size() - 11), ":1\r\n$1\r\n1\r\n");

  // Unauthenticated: nothing runs inline (the executor answers NOAUTH).
  auto unauthenticated = Job(2, {{"GET", "a"}});
  unauthenticated->session->authenticated = false;
  EXPECT_EQ(e->RunInline(*unauthenticated, std::chrono::seconds(10)), 0u);

  // While a round of the cluster is queued (it may write what the read would see), nothing
  // runs inline: the read waits its turn on the executor.
  Block(pool);
  e->Submit(Job(3, {{"SET", "a", "2"}}));
  auto read = Job(4, {{"GET", "a"}});
  EXPECT_EQ(e->RunInline(*read, std::chrono::seconds(10)), 0u);
  Release();
  WaitForJobs(2);
  // The round ends just after handing its replies back.
  size_t ran = 0;
  for (int i = 0; i < 5000 && ran == 0; ++i) {
    ran = e->RunInline(*read, std::chrono::seconds(10));
    if (ran == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(ran, 1u);
  EXPECT_EQ(read->out, "$1\r\n2\r\n");
  pool.Stop();
}

}  // namespace
}  // namespace keyward
