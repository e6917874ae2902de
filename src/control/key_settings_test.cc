#include "control/key_settings.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace keyward {
namespace {

using nlohmann::json;

EncryptionKey AzureKey() {
  auto s = ValidateKeySettings("azure-key-vault", "eastus",
                               json{{"key_vault_name", "kv-typo"},
                                    {"key_name_prefix", "cmek"},
                                    {"subscription_id", "sub"},
                                    {"resource_group", "rg"}},
                               "azure");
  EXPECT_TRUE(s.ok()) << s.status();
  EncryptionKey k;
  k.id = "k-1";
  k.provider = "azure-key-vault";
  k.region = "eastus";
  k.key_name = s->key_name;
  k.config_json = s->config.dump();
  return k;
}

TEST(KeySettings, CreationDrawsAUniqueSuffix) {
  json azure = {{"key_vault_name", "kv-one"}, {"key_name_prefix", "cmek"}};
  auto a = ValidateKeySettings("azure-key-vault", "eastus", azure);
  auto b = ValidateKeySettings("azure-key-vault", "eastus", azure);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->key_name.rfind("cmek-", 0) == 0) << a->key_name;
  EXPECT_EQ(a->key_name.size(), std::string("cmek-").size() + 8);
  EXPECT_NE(a->key_name, b->key_name);
}

TEST(KeySettings, CreationRefusesWhatCreationAlwaysRefused) {
  // Unknown providers: the error lists the registry's customer-managed ones.
  EXPECT_EQ(ValidateKeySettings("gcp-kms", "us-east1", nullptr).status().message(),
            "provider must be azure-key-vault or aws-kms (the key management services CMEK "
            "supports), not 'gcp-kms'");
  EXPECT_EQ(ValidateKeySettings("escrow", "us-east1", json::object()).status().message(),
            "provider must be azure-key-vault or aws-kms (the key management services CMEK "
            "supports), not 'escrow'");
  EXPECT_EQ(ValidateKeySettings("azure-key-vault", "eastu", json{{"key_vault_name", "kv-a"}})
                .status()
                .message(),
            "unknown Azure region 'eastu'; did you mean eastus, eastus2?");
  EXPECT_EQ(ValidateKeySettings("aws-kms", "us-east-1",
                                json{{"key_arn", "arn:aws:kms:eu-west-1:111122223333:key/ab"}})
                .status()
                .message(),
            "the key ARN is in region eu-west-1 but the key is for region us-east-1; use a key "
            "created in us-east-1");
  EXPECT_EQ(ValidateKeySettings("azure-key-vault", "eastus",
                                json{{"key_vault_name", 7}, {"key_name_prefix", "p"}})
                .status()
                .message(),
            "field 'provider_config.key_vault_name' must be a string");
}

// Validation errors name the field, under the request field that carried it (provider_config,
// or the provider's older alias), and an alias of another provider is refused.
TEST(KeySettings, ErrorsNameTheFieldUnderTheRequestFieldUsed) {
  json cfg = {{"key_vault_name", "kv-good"}, {"key_name_prefix", "x"}, {"extra", 1}};
  EXPECT_EQ(ValidateKeySettings("azure-key-vault", "eastus", cfg).status().message(),
            "unknown field 'provider_config.extra'");
  EXPECT_EQ(ValidateKeySettings("azure-key-vault", "eastus", cfg, "azure").status().message(),
            "unknown field 'azure.extra'");
  EXPECT_EQ(ValidateKeySettings("azure-key-vault", "eastus", json{{"key_vault_name", "kv-good"}})
                .status()
                .message(),
            "field 'provider_config.key_name_prefix' is required and must be a string");
  EXPECT_EQ(
      ValidateKeySettings("aws-kms", "us-east-1", json{{"key_arn", "nope"}}, "aws")
          .status()
          .message(),
      "aws.key_arn must be a KMS key ARN like arn:aws:kms:us-east-1:111122223333:key/<key-id>");
  EXPECT_EQ(
      ValidateKeySettings("aws-kms", "us-east-1", json{{"key_arn", "x"}}, "azure")
          .status()
          .message(),
      "field 'azure' does not go with provider aws-kms; give its settings in provider_config");
  auto missing = ValidateKeySettings("aws-kms", "us-east-1", nullptr);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "'provider_config' is required"))
      << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "key_arn")) << missing.status();
}

TEST(KeySettings, ChangingTheVaultKeepsTheNameChangingThePrefixDrawsANewSuffix) {
  EncryptionKey k = AzureKey();
  auto vault = ChangeKeySettings(k, json{{"key_vault_name", "kv-fixed"}}, "azure");
  ASSERT_TRUE(vault.ok()) << vault.status();
  EXPECT_EQ(vault->key_name, k.key_name);
  EXPECT_EQ(vault->config["key_vault_name"], "kv-fixed");
  EXPECT_EQ(vault->config["subscription_id"], "sub");

  auto prefix = ChangeKeySettings(k, json{{"key_name_prefix", "orders"}});
  ASSERT_TRUE(prefix.ok());
  EXPECT_TRUE(prefix->key_name.rfind("orders-", 0) == 0) << prefix->key_name;

  auto hsm = ChangeKeySettings(k, json{{"managed_hsm_name", "hsm-one"}, {"resource_group", ""}});
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  EXPECT_FALSE(hsm->config.contains("key_vault_name"));
  EXPECT_FALSE(hsm->config.contains("resource_group"));
  EXPECT_EQ(hsm->config["managed_hsm_name"], "hsm-one");
}

TEST(KeySettings, ChangesAreValidatedAsCreation) {
  EncryptionKey k = AzureKey();
  EXPECT_EQ(ChangeKeySettings(k, json{{"key_vault_name", "kv"}}, "azure").status().message(),
            "azure.key_vault_name must be 3-24 characters of letters, digits and '-', starting "
            "with a letter");
  EXPECT_EQ(
      ChangeKeySettings(k, json{{"key_vault_name", "a1b"}, {"managed_hsm_name", "h1b"}}, "azure")
          .status()
          .message(),
      "give exactly one of azure.key_vault_name and azure.managed_hsm_name");
  EXPECT_EQ(ChangeKeySettings(k, json{{"key_arn", "x"}}, "aws").status().message(),
            "field 'aws' does not go with provider azure-key-vault; give its settings in "
            "provider_config");
  EXPECT_EQ(ChangeKeySettings(k, json{{"key_arn", "x"}}).status().message(),
            "unknown field 'provider_config.key_arn'");
  EXPECT_TRUE(absl::IsInvalidArgument(ChangeKeySettings(k, nullptr).status()));

  EncryptionKey aws;
  aws.provider = "aws-kms";
  aws.region = "us-east-1";
  aws.key_name = "arn:aws:kms:us-east-1:111122223333:key/ab";
  aws.config_json = json{{"key_arn", aws.key_name}}.dump();
  auto moved =
      ChangeKeySettings(aws, json{{"key_arn", "arn:aws:kms:us-east-1:111122223333:key/cd"}}, "aws");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->key_name, "arn:aws:kms:us-east-1:111122223333:key/cd");
  EXPECT_EQ(ChangeKeySettings(aws, json{{"key_arn", "arn:aws:kms:us-west-2:111122223333:key/cd"}})
                .status()
                .message(),
            "the key ARN is in region us-west-2 but the key is for region us-east-1; use a key "
            "created in us-east-1");
}

}  // namespace
}  // namespace keyward
