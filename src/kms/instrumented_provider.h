#pragma once
// A MasterKeyProvider decorator that counts and times every Wrap, Unwrap and Describe of the
// provider it wraps (LevelDB EnvWrapper style: everything else is forwarded unchanged):
//   keyward_kms_requests_total{provider,operation,result}         result "ok" or an error class
//   keyward_kms_request_duration_seconds{provider,operation}      histogram, 5 ms … 10 s
// The product KMS factory applies it to every provider it hands out. Thread-safe as the wrapped
// provider is; owns a reference to it.

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "kms/master_key_provider.h"

namespace keyward {

std::shared_ptr<MasterKeyProvider> Instrument(std::shared_ptr<MasterKeyProvider> inner);

// Registers the two metric families, so /metrics shows them (empty) before any KMS call.
void RegisterKmsMetrics();

// The `result` label for a call that ended with `status`: "ok", or a short error class from its
// code (not_found, permission_denied, failed_precondition, unavailable, deadline_exceeded,
// unauthenticated, invalid_argument, data_loss, else "error"), a fixed set.
std::string_view KmsResultLabel(const absl::Status& status);

}  // namespace keyward
