#include "kms/kms_factory.h"

#include "absl/strings/str_cat.h"
#include "kms/escrow/escrow_module.h"
#include "kms/instrumented_provider.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

class RegistryKmsFactory : public KmsFactory {
 public:
  RegistryKmsFactory(std::map<std::string, std::shared_ptr<KmsProviderClient>> clients,
                     const KmsProviderRegistry& registry)
      : clients_(std::move(clients)), registry_(registry) {
    RegisterKmsMetrics();
  }

  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> ProviderFor(
      const EncryptionKey& key) override {
    const KmsProviderModule* module = registry_.Find(key.provider);
    if (module == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this keyward server knows no KMS provider named ", key.provider, " (it knows ",
          registry_.CustomerManagedNames(), "), so it cannot reach the key"));
    }
    std::shared_ptr<KmsProviderClient> client = ClientFor(*module);
    if (!client) return absl::FailedPreconditionError(module->NotConfiguredMessage());
    ASSIGN_OR_RETURN(std::shared_ptr<MasterKeyProvider> p, client->New(KmsKeyRef::FromRecord(key)));
    return Instrument(std::move(p));
  }

  bool Configured(const std::string& provider) const override {
    const KmsProviderModule* module = registry_.Find(provider);
    return module != nullptr && ClientFor(*module) != nullptr;
  }

 private:
  std::shared_ptr<KmsProviderClient> ClientFor(const KmsProviderModule& module) const {
    auto it = clients_.find(module.name());
    return it != clients_.end() ? it->second : module.DefaultClient();
  }

  const std::map<std::string, std::shared_ptr<KmsProviderClient>> clients_;
  const KmsProviderRegistry& registry_;
};

}  // namespace

std::unique_ptr<KmsFactory> NewRegistryKmsFactory(
    std::map<std::string, std::shared_ptr<KmsProviderClient>> clients,
    const KmsProviderRegistry& registry) {
  return std::make_unique<RegistryKmsFactory>(std::move(clients), registry);
}

std::unique_ptr<KmsFactory> NewProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow,
                                                 const KmsServeConfig& settings) {
  std::map<std::string, std::shared_ptr<KmsProviderClient>> clients;
  for (const auto& [provider, s] : settings) {
    if (!s) continue;
    if (std::shared_ptr<KmsProviderClient> client = s->NewClient()) clients[provider] = client;
  }
  clients[kEscrowProviderName] = NewEscrowClient(std::move(escrow));
  return NewRegistryKmsFactory(std::move(clients));
}

}  // namespace keyward
