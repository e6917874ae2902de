#pragma once
// `keyward serve`'s flags: the server's own, and each registered KMS provider's (its module's
// serve_flags(), listed in --help under the provider's name); `--config FILE`; the parsing of
// the client limits.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "kms/provider_registry.h"
#include "server/resp_server.h"

namespace keyward {

// serve --help: the server's flags, then each provider module's under "<display name>
// (<name>)".
std::string ServeHelp(const KmsProviderRegistry& registry = KmsProviderRegistry::Global());

// `--config FILE`: a JSON object of the same flags, {"data-dir": "...", "azure-managed-identity":
// true}; flags on the command line win.
absl::StatusOr<std::vector<std::string>> WithConfigFile(const std::vector<std::string>& args);

// The server's flags and every registered provider's. InvalidArgument naming an unknown flag;
// Internal when two modules (or a module and the server) claim one flag name.
absl::StatusOr<ParsedFlags> ParseServeFlags(
    const std::vector<std::string>& args,
    const KmsProviderRegistry& registry = KmsProviderRegistry::Global());

// --max-clients, --max-clients-per-cluster, --max-input-bytes, --max-client-memory,
// --auth-timeout, --idle-timeout (server/connection_limits.h).
absl::Status ParseClientLimits(const ParsedFlags& flags, RespServerOptions* o);

// --listen's HOST:PORT.
absl::Status SplitHostPort(const std::string& s, std::string* host, int* port);

}  // namespace keyward
