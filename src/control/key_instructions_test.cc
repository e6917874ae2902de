#include "control/key_instructions.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace keyward
