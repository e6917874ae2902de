#include "test_vault_provider.h"

#include <map>
#include <mutex>
#include <regex>

#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm.h"
#include "crypto/random.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

// Wraps with an AES-256-GCM key held in memory, the context as associated data.
class TestVaultKey : public MasterKeyProvider {
 public:
  TestVaultKey(std::string key_name, std::shared_ptr<const SecretBytes> secret)
      : key_name_(std::move(key_name)), secret_(std::move(secret)) {}
  std::string_view provider_name() const override { return kTestVaultProvider; }
  std::string key_id() const override { return key_name_; }
  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override {
    ASSIGN_OR_RETURN(std::string sealed, GcmSeal(*secret_, plaintext.view(), context));
    return WrappedKey{std::string(kTestVaultProvider), key_name_, "1", "A256GCM", sealed};
  }
  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped, std::string_view context) override {
    return GcmOpen(*secret_, wrapped.ciphertext, context);
  }
  absl::StatusOr<KeyDescription> Describe() override {
    KeyDescription d;
    d.key_id = key_name_;
    d.key_version = "1";
    d.enabled = true;
    d.can_wrap = true;
    return d;
  }

 private:
  std::string key_name_;
  std::shared_ptr<const SecretBytes> secret_;
};

class TestVaultClient : public KmsProviderClient {
 public:
  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> New(const KmsKeyRef& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& secret = secrets_[key.key_name];
    if (!secret) {
      ASSIGN_OR_RETURN(SecretBytes fresh, RandomSecret(32));
      secret = std::make_shared<const SecretBytes>(std::move(fresh));
    }
    return std::make_shared<TestVaultKey>(key.key_name, secret);
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const SecretBytes>> secrets_;
};

class TestVaultModule : public KmsProviderModule {
 public:
  std::string name() const override { return kTestVaultProvider; }
  std::string display_name() const override { return "Test Vault"; }
  std::string cloud() const override { return "gcp"; }
  std::vector<KmsConfigField> config_fields() const override {
    return {{"vault", "string", true, "the vault, tv-<name>", ""},
            {"strict", "boolean", false, "refuse disabled keys", ""}};
  }
  absl::StatusOr<KmsKeySettings> Validate(const std::string& region, const json& cfg,
                                          const std::string& prefix) const override {
    static const std::regex kVault("^tv-[a-z0-9]{1,20}$");
    std::string vault = cfg.value("vault", "");
    if (!std::regex_match(vault, kVault)) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "vault must look like tv-name"));
    }
    return KmsKeySettings{absl::StrCat(vault, "/", region, "/cmek"), cfg};
  }
  json Instructions(const KmsKeyRef& key, const ServiceIdentity&) const override {
    return {{"vault", key.config.value("vault", "")},
            {"text", absl::StrCat("create key ", key.key_name, " in your test vault\n")}};
  }
  std::vector<KmsKeyCheck> DescriptionChecks(const KmsKeyRef&,
                                             const KeyDescription& d) const override {
    return {{"enabled", d.enabled, d.enabled ? "test key is enabled" : "test key is disabled"}};
  }
  std::shared_ptr<KmsProviderClient> DefaultClient() const override { return client_; }

 private:
  std::shared_ptr<KmsProviderClient> client_ = std::make_shared<TestVaultClient>();
};

}  // namespace

std::unique_ptr<KmsProviderModule> NewTestVaultModule() {
  return std::make_unique<TestVaultModule>();
}

ScopedTestVaultProvider::ScopedTestVaultProvider() {
  KmsProviderRegistry::Global().Register(NewTestVaultModule()).IgnoreError();
}

ScopedTestVaultProvider::~ScopedTestVaultProvider() {
  KmsProviderRegistry::Global().UnregisterForTest(kTestVaultProvider);
}

}  // namespace keyward
