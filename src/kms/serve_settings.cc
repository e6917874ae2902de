#include "kms/serve_settings.h"

#include <cstdlib>

#include "absl/strings/cord.h"

namespace keyward {
namespace {

constexpr char kServerSetupPayload[] = "type.keyward.dev/kms-server-setup";

}  // namespace

absl::Status KmsServerSetupError(absl::Status st) {
  if (!st.ok()) st.SetPayload(kServerSetupPayload, absl::Cord("server"));
  return st;
}

bool IsKmsServerSetupError(const absl::Status& st) {
  return st.GetPayload(kServerSetupPayload).has_value();
}

std::optional<std::string> KmsFlagValues::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string KmsFlagValues::GetOrEnv(const KmsServeFlag& flag, const std::string& fallback) const {
  if (auto v = Get(flag.name)) return *v;
  return flag.env.empty() ? fallback : KmsEnvOr(flag.env.c_str(), fallback);
}

std::string KmsEnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace keyward
