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
    if (c.ok() && c->outcome == Outcome::kClaimed) generation_ = c->generation;
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
  int64_t generation_ = 0;  // of the last claim taken
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
        *md_, "u-1", "key-1", "POST /api/v1/clusters", generation_, [this] { return now_.load(); },
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
  ASSERT_TRUE(
      md_->FinishIdempotent("u-1", "key-1", "POST /api/v1/clusters", generation_, {201, "{}"})
          .ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      md_->RefreshIdempotent("u-1", "key-1", "POST /api/v1/clusters", generation_, now_ + 5000)));
  EXPECT_EQ(Claim(now_ + 5000), Outcome::kReplay);
  // A released claim stays free.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      md_->RefreshIdempotent("u-1", "other", "POST /api/v1/clusters", 1, now_)));
  auto c = md_->ClaimIdempotent("u-1", "other", "POST /api/v1/clusters", "hash", now_, kStale);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->outcome, Outcome::kClaimed);
}

// A holder whose refreshes failed past the stale time lost its claim to the next request: its
// late refreshes and its answer are refused, and the new holder's claim is the one finished.
TEST_F(IdempotencyLeaseTest, AStaleHolderCannotRefreshOrFinishTheNewHoldersClaim) {
  ASSERT_EQ(Claim(now_), Outcome::kClaimed);
  const int64_t stale_holder = generation_;
  ASSERT_EQ(Claim(now_ + kStale + 1), Outcome::kClaimed);  // taken over
  const int64_t new_holder = generation_;
  EXPECT_EQ(new_holder, stale_holder + 1);
  const std::string route = "POST /api/v1/clusters";
  EXPECT_TRUE(absl::IsFailedPrecondition(
      md_->RefreshIdempotent("u-1", "key-1", route, stale_holder, now_ + kStale + 2)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      md_->FinishIdempotent("u-1", "key-1", route, stale_holder, {201, "{\"from\":\"stale\"}"})));
  // Nor does its release free the new holder's claim.
  ASSERT_TRUE(md_->ReleaseIdempotent("u-1", "key-1", route, stale_holder).ok());
  EXPECT_EQ(Claim(now_ + kStale + 3), Outcome::kRunning);
  // A lease of the stale generation notices and stops.
  {
    IdempotencyLease lease(
        *md_, "u-1", "key-1", route, stale_holder, [this] { return now_.load(); },
        std::chrono::milliseconds(2));
    for (int i = 0; i < 2000 && !lease.lost(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(lease.lost());
    EXPECT_EQ(lease.refreshes(), 0);
  }
  ASSERT_TRUE(
      md_->FinishIdempotent("u-1", "key-1", route, new_holder, {201, "{\"from\":\"new\"}"}).ok());
  auto replay = md_->ClaimIdempotent("u-1", "key-1", route, "hash", now_ + kStale + 4, kStale);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->outcome, Outcome::kReplay);
  EXPECT_EQ(replay->response.body, "{\"from\":\"new\"}");
}

TEST_F(IdempotencyLeaseTest, TheDestructorStopsAtOnce) {
  ASSERT_EQ(Claim(now_), Outcome::kClaimed);
  auto t0 = std::chrono::steady_clock::now();
  {
    IdempotencyLease lease(
        *md_, "u-1", "key-1", "POST /api/v1/clusters", generation_, [this] { return now_.load(); },
        std::chrono::hours(1));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace keyward
