#pragma once
// keyward-kms-emulator: Microsoft Entra ID tokens, Azure Key Vault (data plane) and the ARM
// paths for vaults and role assignments, served on one loopback HTTPS port for tests and local
// development. Requests for a vault arrive with Host `{vault}.vault.azure.net`; clients map
// those names to 127.0.0.1 (keyward: --azure-connect-to; Node: a dns.lookup shim).
// AWS KMS (JSON 1.1, SigV4) answers on the same port at `aws_endpoint` (requests carrying
// X-Amz-Target); its principals come from POST {admin_url}/aws/principals.
// State lives in memory and, with a state dir, in state.json (0600) so a test can restart it.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace keyward::emulator {

struct EmulatorOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string state_dir;
};

class Emulator {
 public:
  static absl::StatusOr<std::unique_ptr<Emulator>> New(EmulatorOptions options);
  virtual ~Emulator() = default;
  virtual int port() const = 0;
  virtual std::string ReadyLine() const = 0;  // one JSON line with the URLs clients need
  virtual void Serve() = 0;                   // blocks until Stop()
  virtual void Stop() = 0;
};

}  // namespace keyward::emulator
