#include "kms/instrumented_provider.h"

#include <chrono>
#include <string>

#include "util/metrics.h"

namespace keyward {
namespace {

metrics::CounterFamily& Requests() {
  static auto& f = metrics::DefaultRegistry().AddCounter(
      "keyward_kms_requests_total", "Calls to a master-key provider, by result.",
      {"provider", "operation", "result"});
  return f;
}

metrics::HistogramFamily& Durations() {
  static auto& f = metrics::DefaultRegistry().AddHistogram(
      "keyward_kms_request_duration_seconds", "Time of calls to a master-key provider.",
      {"provider", "operation"}, metrics::LatencyBuckets());
  return f;
}

}  // namespace

void RegisterKmsMetrics() {
  Requests();
  Durations();
}

namespace {

// One operation's series, looked up once per provider: a call costs two atomic updates.
class OperationMetrics {
 public:
  OperationMetrics(std::string provider, std::string operation)
      : provider_(std::move(provider)),
        operation_(std::move(operation)),
        ok_(Requests().WithLabels({provider_, operation_, "ok"})),
        duration_(Durations().WithLabels({provider_, operation_})) {}

  template <typename F>
  auto Time(F&& call) {
    auto start = std::chrono::steady_clock::now();
    auto result = call();
    duration_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (result.ok()) {
      ok_->Inc();
    } else {  // rare: the family lock is fine here
      Requests()
          .WithLabels({provider_, operation_, std::string(KmsResultLabel(result.status()))})
          ->Inc();
    }
    return result;
  }

 private:
  std::string provider_, operation_;
  std::shared_ptr<metrics::Counter> ok_;
  std::shared_ptr<metrics::Histogram> duration_;
};

class InstrumentedProvider : public MasterKeyProvider {
 public:
  explicit InstrumentedProvider(std::shared_ptr<MasterKeyProvider> inner)
      : inner_(std::move(inner)),
        wrap_(std::string(inner_->provider_name()), "wrap"),
        unwrap_(std::string(inner_->provider_name()), "unwrap"),
        describe_(std::string(inner_->provider_name()), "describe") {}

  std::string_view provider_name() const override { return inner_->provider_name(); }
  std::string key_id() const override { return inner_->key_id(); }

  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override {
    return wrap_.Time([&] { return inner_->Wrap(plaintext, context); });
  }
  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped, std::string_view context) override {
    return unwrap_.Time([&] { return inner_->Unwrap(wrapped, context); });
  }
  absl::StatusOr<KeyDescription> Describe() override {
    return describe_.Time([&] { return inner_->Describe(); });
  }

 private:
  std::shared_ptr<MasterKeyProvider> inner_;
  OperationMetrics wrap_, unwrap_, describe_;
};

}  // namespace

std::shared_ptr<MasterKeyProvider> Instrument(std::shared_ptr<MasterKeyProvider> inner) {
  return std::make_shared<InstrumentedProvider>(std::move(inner));
}

std::string_view KmsResultLabel(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kPermissionDenied:
      return "permission_denied";
    case absl::StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kDataLoss:
      return "data_loss";
    default:
      return "error";
  }
}

}  // namespace keyward
