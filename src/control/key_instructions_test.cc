#include "control/key_instructions.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace keyward {
namespace {

EncryptionKey InstructedAzureKey() {
  EncryptionKey k;
  k.id = "k-0123456789abcdef";
  k.project_id = "p-0123456789abcdef";
  k.provider = "azure-key-vault";
  k.region = "eastus";
  k.key_name = "cmek-abc123";
  k.config_json = R"({"key_vault_name":"kv-pay","key_name_prefix":"cmek"})";
  return k;
}

TEST(KeyInstructions, APlaceholderIdentityIsSaidWhereItIsShown) {
  ServiceIdentity generated{"11111111-2222-4333-a444-555555555555", "keyward-abc", "arn:x", true,
                            true};
  nlohmann::json out = KeyInstructions(InstructedAzureKey(), generated);
  EXPECT_EQ(out["service_identity"]["placeholder"], true);
  EXPECT_NE(out["service_identity"]["warning"].get<std::string>().find("placeholders"),
            std::string::npos);

  EncryptionKey aws = InstructedAzureKey();
  aws.provider = "aws-kms";
  aws.key_name = "arn:aws:kms:us-east-1:111122223333:key/ab";
  out = KeyInstructions(aws, generated);
  EXPECT_NE(out["service_identity"]["warning"].get<std::string>().find("AWS"), std::string::npos);
}

TEST(KeyInstructions, ARealIdentityCarriesNoWarning) {
  ServiceIdentity real{"11111111-2222-4333-a444-555555555555", "keyward-prod", "arn:x", false,
                       true};
  nlohmann::json out = KeyInstructions(InstructedAzureKey(), real);
  EXPECT_EQ(out["service_identity"]["placeholder"], false);
  EXPECT_FALSE(out["service_identity"].contains("warning"));
  EXPECT_EQ(out["service_identity"]["microsoft_entra_application_id"],
            "11111111-2222-4333-a444-555555555555");
}

TEST(KeyManagementServices, OffersBothServicesWithIdentityRegionsAndWhatComesFirst) {
  ServiceIdentity id{"11111111-2222-4333-a444-555555555555", "keyward-prod",
                     "arn:aws:iam::111122223333:role/keyward", false, true};
  nlohmann::json out = KeyManagementServices(id);
  ASSERT_EQ(out.size(), 2u);
  const nlohmann::json& azure = out[0];
  EXPECT_EQ(azure["provider"], "azure-key-vault");
  EXPECT_EQ(azure["name"], "Azure Key Vault");
  EXPECT_EQ(azure["service_identity"]["microsoft_entra_application_name"], "keyward-prod");
  EXPECT_EQ(azure["service_identity"]["placeholder"], false);
  EXPECT_EQ(azure["create_service_principal_command"],
            "az ad sp create --id 11111111-2222-4333-a444-555555555555");
  const auto& regions = azure["regions"];
  EXPECT_NE(std::find(regions.begin(), regions.end(), "eastus"), regions.end());

  const nlohmann::json& aws = out[1];
  EXPECT_EQ(aws["provider"], "aws-kms");
  EXPECT_EQ(aws["name"], "AWS KMS");
  EXPECT_EQ(aws["service_identity"]["placeholder"], true);
  EXPECT_FALSE(aws["service_identity"]["warning"].get<std::string>().empty());
  // The policy a customer pastes before any key record exists names keyward's principal.
  EXPECT_EQ(aws["key_policy"]["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:role/keyward");
  EXPECT_EQ(aws["key_policy"]["Statement"][0]["Sid"], "AllowKeywardToUseTheKey");
}

}  // namespace
}  // namespace keyward
