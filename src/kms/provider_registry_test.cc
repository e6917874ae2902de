#include "kms/provider_registry.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "crypto/random.h"
#include "kms/escrow/escrow_module.h"
#include "kms/kms_factory.h"
#include "test_vault_provider.h"

namespace keyward {
namespace {

using nlohmann::json;

TEST(KmsProviderRegistry, HoldsTheBuiltInProvidersInOrder) {
  std::vector<std::string> names;
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    names.push_back(m->name());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"escrow", "azure-key-vault", "aws-kms"}));
  EXPECT_EQ(KmsProviderRegistry::Global().ForCloud("aws")->name(), "aws-kms");
  EXPECT_EQ(KmsProviderRegistry::Global().ForCloud("azure")->name(), "azure-key-vault");
  EXPECT_EQ(KmsProviderRegistry::Global().ForCloud("gcp"), nullptr);
}

// An unknown provider, or one customers cannot use, is refused with the list of known ones.
TEST(KmsProviderRegistry, UnknownProviderErrorListsTheKnownOnes) {
  for (const char* name : {"kmip", "escrow", ""}) {
    auto m = KmsProviderRegistry::Global().CustomerManaged(name);
    ASSERT_TRUE(absl::IsInvalidArgument(m.status())) << name;
    EXPECT_EQ(m.status().message(),
              absl::StrCat("provider must be azure-key-vault or aws-kms (the key management "
                           "services CMEK supports), not '",
                           name, "'"));
  }
  ScopedTestVaultProvider test_vault;
  EXPECT_TRUE(
      absl::StrContains(KmsProviderRegistry::Global().CustomerManaged("kmip").status().message(),
                        "azure-key-vault, aws-kms or test-vault"));
}

TEST(KmsProviderRegistry, ANameIsRegisteredOnce) {
  ScopedTestVaultProvider test_vault;
  absl::Status again = KmsProviderRegistry::Global().Register(NewTestVaultModule());
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;
}

// Config validation errors name the field, with the prefix of the request field used.
TEST(KmsProviderRegistry, ConfigFieldErrorsNameTheField) {
  const KmsProviderModule& azure = *KmsProviderRegistry::Global().Find("azure-key-vault");
  auto check = [&](const json& cfg, bool creating) {
    return std::string(CheckKmsConfigFields(azure, cfg, "provider_config.", creating).message());
  };
  EXPECT_EQ(check(json{{"key_vault_name", "kv"}, {"key_name_prefix", "p"}, {"extra", 1}}, true),
            "unknown field 'provider_config.extra'");
  EXPECT_EQ(check(json{{"key_vault_name", 7}, {"key_name_prefix", "p"}}, true),
            "field 'provider_config.key_vault_name' must be a string");
  EXPECT_EQ(check(json{{"key_vault_name", "kv"}}, true),
            "field 'provider_config.key_name_prefix' is required and must be a string");
  EXPECT_EQ(check(json{{"key_name_prefix", "p"}}, true),
            "give exactly one of provider_config.key_vault_name and "
            "provider_config.managed_hsm_name");
  EXPECT_EQ(check(json{{"key_vault_name", "kv"}}, false), "");  // a change names only some
  EXPECT_EQ(check(json::array(), false),
            "field 'provider_config' must be an object of azure-key-vault settings");
  const KmsProviderModule& aws = *KmsProviderRegistry::Global().Find("aws-kms");
  EXPECT_EQ(CheckKmsConfigFields(aws, json::object(), "aws.", true).message(),
            "field 'aws.key_arn' is required and must be a string");
}

// A huge setting is refused before any module pattern runs over it: a 200,000-character key
// ARN once overflowed the stack inside std::regex and took the whole server down.
TEST(KmsProviderRegistry, OverlongSettingsAreRefusedBeforeValidation) {
  const KmsProviderModule& aws = *KmsProviderRegistry::Global().Find("aws-kms");
  json huge = {{"key_arn", "arn:aws" + std::string(200'000, 'a')}};
  absl::Status st = CheckKmsConfigFields(aws, huge, "provider_config.", true);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "provider_config.key_arn")) << st;
  // The module's own pattern is bounded too (a caller that skipped the field check).
  auto v = aws.Validate("us-east-1", json{{"key_arn", "arn:aws" + std::string(100'000, 'a')}},
                        "provider_config.");
  EXPECT_TRUE(absl::IsInvalidArgument(v.status())) << v.status();
}

TEST(KmsProviderRegistry, SchemaJsonListsFieldsAndTheirFlags) {
  json azure = KmsProviderJson(*KmsProviderRegistry::Global().Find("azure-key-vault"));
  EXPECT_EQ(azure["display_name"], "Azure Key Vault");
  EXPECT_EQ(azure["cloud"], "azure");
  EXPECT_EQ(azure["legacy_field"], "azure");
  ASSERT_EQ(azure["config_fields"].size(), 5u);
  EXPECT_EQ(azure["config_fields"][0]["name"], "key_vault_name");
  EXPECT_EQ(azure["config_fields"][0]["cli_flag"], "--key-vault-name");
  EXPECT_EQ(azure["config_fields"][0]["one_of"], "vault");
  EXPECT_EQ(azure["config_fields"][2]["required"], true);
}

// The registry factory: a provider it does not know, or one this server has no client for,
// is a FailedPrecondition that says what is missing.
TEST(KmsProviderRegistry, FactoryNamesWhatIsMissing) {
  auto factory = NewRegistryKmsFactory({});
  EncryptionKey key;
  key.id = "k-1";
  key.provider = "kmip";
  auto unknown = factory->ProviderFor(key);
  ASSERT_TRUE(absl::IsFailedPrecondition(unknown.status())) << unknown.status();
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "azure-key-vault or aws-kms"));
  key.provider = "aws-kms";
  key.key_name = "arn:aws:kms:us-east-1:111122223333:key/ab";
  auto unconfigured = factory->ProviderFor(key);
  ASSERT_TRUE(absl::IsFailedPrecondition(unconfigured.status()));
  EXPECT_TRUE(absl::StrContains(unconfigured.status().message(), "AWS_ACCESS_KEY_ID"))
      << unconfigured.status();
  EXPECT_FALSE(factory->Configured("aws-kms"));
  EXPECT_FALSE(factory->Configured("kmip"));

  // A module with a default client needs nothing from the server.
  ScopedTestVaultProvider test_vault;
  EXPECT_TRUE(factory->Configured("test-vault"));
  key.provider = "test-vault";
  key.key_name = "tv-a/us-central1/cmek";
  auto p = factory->ProviderFor(key);
  ASSERT_TRUE(p.ok()) << p.status();
  auto secret = RandomSecret(32);
  ASSERT_TRUE(secret.ok());
  auto wrapped = (*p)->Wrap(*secret, "c-1");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  auto back = (*p)->Unwrap(*wrapped, "c-1");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->Equals(*secret));
  EXPECT_FALSE((*p)->Unwrap(*wrapped, "c-2").ok());  // bound to its context
}

}  // namespace
}  // namespace keyward
