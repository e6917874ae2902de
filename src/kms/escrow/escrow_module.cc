#include "kms/escrow/escrow_module.h"

namespace keyward {
namespace {

class EscrowModule : public KmsProviderModule {
 public:
  std::string name() const override { return kEscrowProviderName; }
  std::string display_name() const override { return "keyward escrow key"; }
  bool customer_managed() const override { return false; }

  absl::StatusOr<KmsKeySettings> Validate(const std::string&, const nlohmann::json&,
                                          const std::string&) const override {
    return absl::InvalidArgumentError(
        "the escrow key is the service's own key for projects without CMEK; it is created with "
        "the project, never requested");
  }
  nlohmann::json Instructions(const KmsKeyRef&, const ServiceIdentity&) const override {
    return nlohmann::json::object();  // nothing for the customer to do
  }
  std::vector<KmsKeyCheck> DescriptionChecks(const KmsKeyRef&,
                                             const KeyDescription& d) const override {
    return {{"enabled", d.enabled, d.enabled ? "key is enabled" : "the escrow key is unusable"}};
  }
};

class EscrowClient : public KmsProviderClient {
 public:
  explicit EscrowClient(std::shared_ptr<MasterKeyProvider> escrow) : escrow_(std::move(escrow)) {}
  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> New(const KmsKeyRef&) override {
    return escrow_;
  }

 private:
  std::shared_ptr<MasterKeyProvider> escrow_;
};

}  // namespace

std::unique_ptr<KmsProviderModule> NewEscrowModule() { return std::make_unique<EscrowModule>(); }

std::shared_ptr<KmsProviderClient> NewEscrowClient(std::shared_ptr<MasterKeyProvider> escrow) {
  return std::make_shared<EscrowClient>(std::move(escrow));
}

}  // namespace keyward
