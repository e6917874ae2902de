#pragma once
// What a KMS provider module contributes to `keyward serve`: the flags it owns (listed in
// --help under the provider's name), and the settings it makes of them and of its SDK's
// environment variables. serve parses every registered module's flags and hands each module's
// settings, opaque to it, to the KMS factory: serve, the CLI and the control plane never name a
// provider.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace keyward {

class KmsProviderClient;

// One `keyward serve` flag a provider module owns.
struct KmsServeFlag {
  std::string name;   // without the dashes: "aws-endpoint-url"
  std::string value;  // the value's placeholder in --help ("URL"); "" for a boolean flag
  std::string help;   // --help text; each '\n' starts a continuation line
  std::string env;    // the environment variable read when the flag is absent ("" for none)
};

// The flags serve was given (name without dashes → value; "true" for a boolean flag). The
// module's view of them: kms does not depend on the CLI's flag parser.
class KmsFlagValues {
 public:
  explicit KmsFlagValues(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  std::optional<std::string> Get(const std::string& name) const;
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // `flag`'s value, else its environment variable's (when set and not empty), else `fallback`.
  std::string GetOrEnv(const KmsServeFlag& flag, const std::string& fallback = "") const;

 private:
  std::map<std::string, std::string> values_;
};

// The environment variable `name` when set and not empty, else `fallback`.
std::string KmsEnvOr(const char* name, const std::string& fallback = "");

// What a module made of its serve flags and environment. Immutable once built.
class KmsServeSettings {
 public:
  virtual ~KmsServeSettings() = default;
  // The server's client for the provider; nullptr when these settings configure none (then the
  // provider's keys say what the server lacks: KmsProviderModule::NotConfiguredMessage).
  virtual std::shared_ptr<KmsProviderClient> NewClient() const = 0;
};

// Marks `st` as this server's own missing or unusable KMS configuration (no credentials, an
// unreadable token file, credentials the KMS does not accept): nothing the key's owner can fix.
// A key test that fails for that reason proves nothing about the key, which keeps its state.
absl::Status KmsServerSetupError(absl::Status st);
bool IsKmsServerSetupError(const absl::Status& st);

// Every module's settings by provider name: what serve hands the KMS factory.
using KmsServeConfig = std::map<std::string, std::shared_ptr<const KmsServeSettings>>;

}  // namespace keyward
