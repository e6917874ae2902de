#include "kms/instrumented_provider.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"
#include "util/metrics.h"

namespace keyward {
namespace {

// The value of the sample line that starts with `series` ("name{labels}"), 0 when absent.
double Sample(const std::string& series) {
  std::string text = metrics::DefaultRegistry().Render();
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

TEST(InstrumentedProvider, CountsAndTimesEveryCallByResult) {
  char dir[] = "/tmp/kw-instr-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto escrow = EscrowProvider::LoadOrCreate(std::string(dir) + "/escrow.key");
  ASSERT_TRUE(escrow.ok()) << escrow.status();
  auto p = Instrument(std::shared_ptr<MasterKeyProvider>(std::move(*escrow)));
  EXPECT_EQ(p->provider_name(), "escrow");

  const std::string ok_wrap =
      R"(keyward_kms_requests_total{provider="escrow",operation="wrap",result="ok"})";
  const std::string ok_unwrap =
      R"(keyward_kms_requests_total{provider="escrow",operation="unwrap",result="ok"})";
  const std::string timed_unwrap =
      R"(keyward_kms_request_duration_seconds_count{provider="escrow",operation="unwrap"})";
  double wraps = Sample(ok_wrap), unwraps = Sample(ok_unwrap), timed = Sample(timed_unwrap);

  auto secret = RandomSecret(32);
  ASSERT_TRUE(secret.ok());
  auto wrapped = p->Wrap(*secret, "cluster-a");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  ASSERT_TRUE(p->Unwrap(*wrapped, "cluster-a").ok());
  auto wrong = p->Unwrap(*wrapped, "cluster-b");  // bound to another cluster: refused
  ASSERT_FALSE(wrong.ok());

  EXPECT_EQ(Sample(ok_wrap), wraps + 1);
  EXPECT_EQ(Sample(ok_unwrap), unwraps + 1);
  EXPECT_EQ(Sample(timed_unwrap), timed + 2);
  EXPECT_GE(Sample(absl::StrCat(
                R"(keyward_kms_requests_total{provider="escrow",operation="unwrap",result=")",
                std::string(KmsResultLabel(wrong.status())), "\"}")),
            1);
  std::string cmd = std::string("rm -rf ") + dir;
  (void)!std::system(cmd.c_str());
}

TEST(InstrumentedProvider, ResultLabelsAreAFixedSet) {
  EXPECT_EQ(KmsResultLabel(absl::OkStatus()), "ok");
  EXPECT_EQ(KmsResultLabel(absl::NotFoundError("x")), "not_found");
  EXPECT_EQ(KmsResultLabel(absl::PermissionDeniedError("x")), "permission_denied");
  EXPECT_EQ(KmsResultLabel(absl::FailedPreconditionError("x")), "failed_precondition");
  EXPECT_EQ(KmsResultLabel(absl::UnavailableError("x")), "unavailable");
  EXPECT_EQ(KmsResultLabel(absl::DeadlineExceededError("x")), "deadline_exceeded");
  EXPECT_EQ(KmsResultLabel(absl::InternalError("x")), "error");
  EXPECT_EQ(KmsResultLabel(absl::UnknownError("x")), "error");
}

}  // namespace
}  // namespace keyward
