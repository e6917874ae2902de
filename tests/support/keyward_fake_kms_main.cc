// keyward-fake-kms: the keyward binary with the test-only fake KMS behind the KMS seam, so
// integration tests can walk the whole CMEK reference flow before real providers exist. The
// fake's state file comes from KEYWARD_FAKE_KMS_STATE. Never installed, never the product.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/serve.h"
#include "fake_kms.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return 2;
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "serve") {
    const char* state = std::getenv("KEYWARD_FAKE_KMS_STATE");
    if (state == nullptr) {
      fprintf(stderr, "keyward-fake-kms: set KEYWARD_FAKE_KMS_STATE\n");
      return 2;
    }
    fprintf(stderr, "keyward-fake-kms: TEST BUILD with a fake KMS (%s)\n", state);
    return keyward::RunServe(rest, [state](std::shared_ptr<keyward::MasterKeyProvider> escrow,
                                           const keyward::KmsServeConfig&) {
      return keyward::NewFakeKmsFactory(std::move(escrow), state);
    });
  }
  return keyward::RunCli(args[0], rest);
}
