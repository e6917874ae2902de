// Arbitrary bytes as every Azure reply keyward reads (Key Vault key bundle, wrap and unwrap
// results, error bodies, Entra ID / IMDS tokens, ARM vaults): every outcome must be a Status,
// never an exception, a crash or an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kms/azure/azure_replies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)keyward::ParseKeyBundle(body);
  (void)keyward::ParseWrapResult(body);
  (void)keyward::ParseUnwrapResult(body);
  (void)keyward::ParseAzureError(body);
  (void)keyward::ParseTokenReply(body);
  (void)keyward::ParseEntraError(body);
  (void)keyward::ParseArmVault(body);
  (void)keyward::KeyVersionFromKid(body);
  (void)keyward::ExcerptForMessage(body);
  return 0;
}
