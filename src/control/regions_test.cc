#include "control/regions.h"

#include <gtest/gtest.h>

namespace keyward {
namespace {

TEST(Regions, KnownRegionsPass) {
  for (auto [cloud, region] : {std::pair{"azure", "eastus"},
                               {"azure", "westeurope"},
                               {"azure", "mexicocentral"},
                               {"aws", "us-east-1"},
                               {"aws", "us-gov-east-1"},
                               {"aws", "cn-northwest-1"},
                               {"gcp", "us-central1"},
                               {"gcp", "asia-southeast1"}}) {
    EXPECT_TRUE(ValidateCloudRegion(cloud, region).ok()) << cloud << " " << region;
  }
}

TEST(Regions, RegionsBelongToTheirCloud) {
  EXPECT_FALSE(ValidateCloudRegion("azure", "us-east-1").ok());
  EXPECT_FALSE(ValidateCloudRegion("aws", "eastus").ok());
  EXPECT_FALSE(ValidateCloudRegion("gcp", "us-east-1").ok());
  EXPECT_FALSE(ValidateCloudRegion("oracle", "us-east-1").ok());
}

TEST(Regions, TypoNamesTheClosestRegions) {
  absl::Status st = ValidateCloudRegion("azure", "eastu");
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_EQ(st.message(), "unknown Azure region 'eastu'; did you mean eastus, eastus2?");
  EXPECT_EQ(ValidateCloudRegion("aws", "us-est-1").message(),
            "unknown AWS region 'us-est-1'; did you mean us-east-1, us-west-1, us-east-2?");
  std::vector<std::string> prefix = SuggestRegions("azure", "westeu");
  ASSERT_FALSE(prefix.empty());
  EXPECT_EQ(prefix[0], "westeurope");
  EXPECT_LE(SuggestRegions("aws", "ap-southeast").size(), 3u);
}

TEST(Regions, NothingCloseSaysWhereTheNamesAre) {
  absl::Status st = ValidateCloudRegion("gcp", "zzzzzzzzzz");
  EXPECT_EQ(
      st.message(),
      "unknown GCP region 'zzzzzzzzzz'; `gcloud compute regions list` lists the region names");
}

TEST(Regions, MalformedNamesAreRefusedBeforeTheList) {
  EXPECT_EQ(ValidateCloudRegion("azure", "../x").message(),
            "region must be a cloud region name such as eastus or us-east-1 (a-z, 0-9, '-')");
  EXPECT_FALSE(ValidateCloudRegion("azure", "").ok());
  EXPECT_FALSE(ValidateCloudRegion("azure", "EastUS").ok());
}

}  // namespace
}  // namespace keyward
