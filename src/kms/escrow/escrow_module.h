#pragma once
// The escrow provider's registry module: the service's own master key for projects without CMEK
// (escrow_provider.h). Not customer-managed: no key requests, no setup, no per-key config; its
// client hands out the one escrow provider the server loaded.

#include <memory>

#include "kms/provider_registry.h"

namespace keyward {

// The provider name of the service's own key: every project without CMEK has a record of it.
inline constexpr char kEscrowProviderName[] = "escrow";

std::unique_ptr<KmsProviderModule> NewEscrowModule();
// The client for the server's escrow key (shared by every non-CMEK project).
std::shared_ptr<KmsProviderClient> NewEscrowClient(std::shared_ptr<MasterKeyProvider> escrow);

}  // namespace keyward
