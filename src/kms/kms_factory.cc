#include "kms/kms_factory.h"

#include "absl/strings/str_cat.h"

namespace keyward {
namespace {

class ProductKmsFactory : public KmsFactory {
 public:
  explicit ProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow)
      : escrow_(std::move(escrow)) {}

  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> ProviderFor(
      const EncryptionKey& key) override {
    if (key.provider == "escrow") return escrow_;
    return absl::UnimplementedError(absl::StrCat(
        "this keyward server has no ", key.provider,
        " client configured yet, so it cannot reach the key; the key stays pending"));
  }

 private:
  std::shared_ptr<MasterKeyProvider> escrow_;
};

}  // namespace

std::unique_ptr<KmsFactory> NewProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow) {
  return std::make_unique<ProductKmsFactory>(std::move(escrow));
}

}  // namespace keyward
