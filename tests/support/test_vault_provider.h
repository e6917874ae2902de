#pragma once
// A test-only KMS provider module, "test-vault", registered from tests to show that a new
// provider needs nothing but its module: its provider_config ({"vault": "tv-…"}), its setup
// text, its key-test check and its client (DefaultClient: an in-process AES-256-GCM key per
// vault) are all here; nothing in the control plane, REST API or CLI names it. Keys are for the
// gcp cloud, whose clusters no built-in provider serves. Never linked into the product.

#include <memory>

#include "kms/provider_registry.h"

namespace keyward {

inline constexpr char kTestVaultProvider[] = "test-vault";

std::unique_ptr<KmsProviderModule> NewTestVaultModule();

// Registers test-vault in the global registry for the scope's lifetime.
class ScopedTestVaultProvider {
 public:
  ScopedTestVaultProvider();
  ~ScopedTestVaultProvider();
  ScopedTestVaultProvider(const ScopedTestVaultProvider&) = delete;
  ScopedTestVaultProvider& operator=(const ScopedTestVaultProvider&) = delete;
};

}  // namespace keyward
