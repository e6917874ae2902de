// An idempotent request that runs longer than the claim's stale time (600 s in the API) keeps
// its claim while it runs, so a retry with the same key waits instead of running it twice; once
// refreshes stop (its server died), the claim is taken over as before. A fake clock drives the
// claim times; the lease's interval is a few milliseconds of real time.
#include "control/idempotency_lease.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "crypto/random.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
using Outcome = IdempotencyClaim::Outcome;
constexpr int64_t kStale = 600;

class IdempotencyLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-lease-" + *RandomHex(6));
    fs::create_directories(root_);
    auto md = OpenSqliteMetadataStore((root_ / "metadata.db").string());
    ASSERT_TRUE(md.ok()) << md.status();
    md_ = std::move(*md);
  }
  void TearDown() override { fs::remove_all(root_); }

  Outcome Claim(int64_t now) {
    auto c = md_->ClaimIdempotent("u-1", "key-1", "POST /api/v1/clusters", "hash", now, kStale);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->outcome : Outcome::kDifferentBody;
  }
  // Lets the lease refresh at least `n` more times at the fake clock's current time.
  void AwaitRefreshes(const IdempotencyLease& lease, int64_t n) {
    const int64_t target = lease.refreshes() + n;
    for (int i = 0; i < 2000 && lease.refreshes() < target; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_GE(lease.refreshes(), target);
  }

  fs::path root_;
  std::unique_ptr<MetadataStore> md_;
  std::atomic<int64_t> now_{1'000'000};
};

TEST_F(IdempotencyLeaseTest, WithoutALeaseALongRequestIsTakenOverAndRunsTwice) {
  ASSERT_EQ(Claim(now_), Outcome::kClaimed);
  EXPECT_EQ(Claim(now_ + kStale), Outcome::kRunning);
  // The first request is still running, but nothing says so: the retry runs it again.
  EXPECT_EQ(Claim(now_ + kStale + 1), Outcome::kClaimed);
}

TEST_F(IdempotencyLeaseTest, ALiveRequestKeepsItsClaimPastTheStaleTime) {
  ASSERT_EQ(Claim(now_), Outcome::kClaimed);
  {
    IdempotencyLease lease(
        *md_, "u-1", "key-1", "POST /api/v1/clusters", [this] { return now_.load(); },
        std::chrono::milliseconds(2));
    // The request runs for an hour of fake time; the lease refreshes along the way.
    for (int minute = 1; minute <= 60; ++minute) {
      now_ += 60;
      AwaitRefreshes(lease, 2);  // the second one surely read the new time
      EXPECT_EQ(Claim(now_ + kStale - 1), Outcome::kRunning) << "taken over at minute " << minute;
    }
  }
  // The request's server stopped (no more refreshes): after the stale time it is taken over.
  EXPECT_EQ(Claim(now_ + kStale - 1), Outcome::kRunning);
  EXPECT_EQ(Claim(now_ + kStale + 1), Outcome::kClaimed);
}

TEST_F(IdempotencyLeaseTest, AFinishedClaimIsNotReopenedByALateRefresh) {
  ASSERT_EQ(Claim(now_), Outcome::kClaimed);
  ASSERT_TRUE(md_->FinishIdempotent("u-1", "key-1", "POST /api/v1/clusters", {201, "{}"}).ok());
  ASSERT_TRUE(md_->RefreshIdempotent("u-1", "key-1", "POST /api/v1/clusters", now_ + 5000).ok());
  EXPECT_EQ(Claim(now_ + 5000), Outcome::kReplay);
  // A released claim stays free.
  ASSERT_TRUE(md_->RefreshIdempotent("u-1", "other", "POST /api/v1/clusters", now_).ok());
  auto c = md_->ClaimIdempotent("u-1", "other", "POST /api/v1/clusters", "hash", now_, kStale);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->outcome, Outcome::kClaimed);
}

TEST_F(IdempotencyLeaseTest, TheDestructorStopsAtOnce) {
  ASSERT_EQ(Claim(now_), Outcome::kClaimed);
  auto t0 = std::chrono::steady_clock::now();
  {
    IdempotencyLease lease(
        *md_, "u-1", "key-1", "POST /api/v1/clusters", [this] { return now_.load(); },
        std::chrono::hours(1));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace keyward
