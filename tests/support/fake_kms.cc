#include "fake_kms.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm.h"
#include "util/bytes.h"
#include "util/file_util.h"

namespace keyward {
namespace {

using nlohmann::json;

class FakeProvider : public MasterKeyProvider {
 public:
  FakeProvider(EncryptionKey key, std::string state_path)
      : key_(std::move(key)), state_path_(std::move(state_path)) {
    json cfg = json::parse(key_.config_json, nullptr, false);
    vault_ = cfg.is_object() ? cfg.value("key_vault_name", "") : "";
  }

  std::string_view provider_name() const override { return key_.provider; }
  std::string key_id() const override { return key_.key_name; }

  absl::StatusOr<KeyDescription> Describe() override {
    auto k = Lookup(/*need_enabled=*/false);
    if (!k.ok()) return k.status();
    KeyDescription d;
    d.key_id = key_.key_name;
    d.key_version = k->value("version", "v1");
    d.enabled = k->value("enabled", true);
    d.can_wrap = k->value("can_wrap", true);
    if (k->contains("purge_protection")) d.purge_protection = (*k)["purge_protection"].get<bool>();
    if (k->contains("region")) d.region = (*k)["region"].get<std::string>();
    if (k->contains("exp")) d.expires_at = (*k)["exp"].get<int64_t>();
    if (k->contains("nbf")) d.not_before = (*k)["nbf"].get<int64_t>();
    return d;
  }

  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override {
    auto k = Lookup(true);
    if (!k.ok()) return k.status();
    auto secret = Secret(*k);
    if (!secret.ok()) return secret.status();
    WrappedKey w{key_.provider, key_.key_name, k->value("version", "v1"), "FAKE-A256GCM", ""};
    auto sealed = GcmSeal(*secret, plaintext.view(), context);
    if (!sealed.ok()) return sealed.status();
    w.ciphertext = *sealed;
    return w;
  }

  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped, std::string_view context) override {
    auto k = Lookup(true);
    if (!k.ok()) return k.status();
    auto secret = Secret(*k);
    if (!secret.ok()) return secret.status();
    auto out = GcmOpen(*secret, wrapped.ciphertext, context);
    if (!out.ok())
      return absl::PermissionDeniedError(
          "unwrapKey failed: the wrapped key does not belong to this key");
    return out;
  }

 private:
  absl::StatusOr<json> Lookup(bool need_enabled) {
    auto text = ReadFileToString(state_path_, 1 << 20);
    json state = text.ok() ? json::parse(*text, nullptr, false) : json::object();
    if (!state.is_object()) state = json::object();
    if (state.value("unreachable", false)) {
      return absl::UnavailableError("the KMS did not answer (connection refused)");
    }
    if (state.value("no_credentials", false)) {  // as AWS KMS without any AWS credentials
      return KmsServerSetupError(absl::FailedPreconditionError(
          "this keyward server has no credentials for the KMS: set FAKE_KMS_TOKEN, then restart "
          "keyward serve"));
    }
    const json keys = state.value("keys", json::object());
    bool azure = key_.provider == "azure-key-vault";
    if (!keys.contains(key_.key_name)) {
      return absl::NotFoundError(azure ? absl::StrCat("key '", key_.key_name,
                                                      "' was not found in Key Vault '", vault_, "'")
                                       : absl::StrCat("key ", key_.key_name, " does not exist"));
    }
    json k = keys[key_.key_name];
    if (!k.value("granted", false)) {
      return absl::PermissionDeniedError(
          azure ? absl::StrCat(
                      "keyward's application is not allowed "
                      "Microsoft.KeyVault/vaults/keys/unwrap/action on key '",
                      key_.key_name,
                      "'; assign it the role Key Vault Crypto Service Encryption User on the key")
                : absl::StrCat("AccessDeniedException: keyward's principal may not use ",
                               key_.key_name, "; add the key policy statement"));
    }
    if (need_enabled && !k.value("enabled", true)) {
      return absl::FailedPreconditionError(
          azure ? absl::StrCat("encryption key for azure/", key_.region,
                               " is disabled in Key Vault '", vault_, "' (key '", key_.key_name,
                               "'); enable it, then resume the cluster")
                : absl::StrCat("DisabledException: ", key_.key_name,
                               " is disabled; enable it, then resume the cluster"));
    }
    return k;
  }

  absl::StatusOr<SecretBytes> Secret(const json& k) {
    auto raw = HexDecode(k.value("secret", ""));
    if (!raw.ok() || raw->size() != 32)
      return absl::InternalError("fake KMS key has no 32-byte secret");
    SecretBytes s = SecretBytes::FromView(*raw);
    WipeString(*raw);
    return s;
  }

  EncryptionKey key_;
  std::string state_path_;
  std::string vault_;
};

class FakeKmsFactory : public KmsFactory {
 public:
  FakeKmsFactory(std::shared_ptr<MasterKeyProvider> escrow, std::string state_path)
      : escrow_(std::move(escrow)), state_path_(std::move(state_path)) {}

  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> ProviderFor(
      const EncryptionKey& key) override {
    if (key.provider == "escrow") return escrow_;
    return std::make_shared<FakeProvider>(key, state_path_);
  }

 private:
  std::shared_ptr<MasterKeyProvider> escrow_;
  std::string state_path_;
};

}  // namespace

std::unique_ptr<KmsFactory> NewFakeKmsFactory(std::shared_ptr<MasterKeyProvider> escrow,
                                              std::string state_path) {
  return std::make_unique<FakeKmsFactory>(std::move(escrow), std::move(state_path));
}

}  // namespace keyward
