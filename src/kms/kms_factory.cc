#include "kms/kms_factory.h"

#include "absl/strings/str_cat.h"
#include "kms/instrumented_provider.h"

namespace keyward {
namespace {

class ProductKmsFactory : public KmsFactory {
 public:
  // Every provider handed out is counted and timed (keyward_kms_* metrics).
  ProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow, std::optional<AzureSettings> azure,
                    std::optional<AwsKmsSettings> aws)
      : escrow_(Instrument(std::move(escrow))), azure_(std::move(azure)), aws_(std::move(aws)) {
    if (aws_) {
      aws_http_ = std::make_shared<HttpClient>(aws_->http);
      // Credentials are shared by every key and cluster, cached until they expire.
      aws_credentials_ = std::make_shared<aws::AwsCredentialSource>(aws_->credentials, aws_http_);
    }
    if (azure_) {
      http_ = std::make_shared<HttpClient>(azure_->http);
      // One token source for keyward's identity: tokens are shared by every key and cluster.
      tokens_ = std::make_shared<EntraTokenSource>(azure_->identity, http_);
    }
  }

  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> ProviderFor(
      const EncryptionKey& key) override {
    if (key.provider == "escrow") return escrow_;
    if (key.provider == "azure-key-vault") {
      if (!azure_) {
        return absl::FailedPreconditionError(
            "this keyward server has no Azure identity: start it with --azure-tenant-id and "
            "--azure-client-id plus AZURE_CLIENT_SECRET (or --azure-managed-identity, or "
            "AZURE_FEDERATED_TOKEN_FILE)");
      }
      auto p = AzureKeyVaultProvider::New(key, azure_->vault, tokens_, http_);
      if (!p.ok()) return p.status();
      return Instrument(std::shared_ptr<MasterKeyProvider>(std::move(*p)));
    }
    if (key.provider == "aws-kms") {
      if (!aws_) {
        return absl::FailedPreconditionError(
            "this keyward server has no AWS KMS client configured; start it with AWS credentials "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or web identity)");
      }
      auto p = aws::AwsKmsProvider::New(key, aws_->kms, aws_credentials_, aws_http_);
      if (!p.ok()) return p.status();
      return Instrument(std::shared_ptr<MasterKeyProvider>(std::move(*p)));
    }
    return absl::UnimplementedError(
        absl::StrCat("this keyward server has no ", key.provider,
                     " client yet, so it cannot reach the key; the key stays pending"));
  }

 private:
  std::shared_ptr<MasterKeyProvider> escrow_;
  std::optional<AzureSettings> azure_;
  std::shared_ptr<HttpClient> http_;
  std::shared_ptr<EntraTokenSource> tokens_;
  std::optional<AwsKmsSettings> aws_;
  std::shared_ptr<HttpClient> aws_http_;
  std::shared_ptr<aws::AwsCredentialSource> aws_credentials_;
};

}  // namespace

std::unique_ptr<KmsFactory> NewProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow,
                                                 std::optional<AzureSettings> azure,
                                                 std::optional<AwsKmsSettings> aws) {
  return std::make_unique<ProductKmsFactory>(std::move(escrow), std::move(azure), std::move(aws));
}

}  // namespace keyward
