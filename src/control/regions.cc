#include "control/regions.h"

#include <algorithm>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace keyward {
namespace {

// Public regions of each cloud (plus the sovereign ones a customer can hold keys in).
const std::vector<std::string_view> kAzure = {
    "eastus",
    "eastus2",
    "westus",
    "westus2",
    "westus3",
    "centralus",
    "northcentralus",
    "southcentralus",
    "westcentralus",
    "canadacentral",
    "canadaeast",
    "brazilsouth",
    "brazilsoutheast",
    "mexicocentral",
    "northeurope",
    "westeurope",
    "uksouth",
    "ukwest",
    "francecentral",
    "francesouth",
    "germanywestcentral",
    "germanynorth",
    "norwayeast",
    "norwaywest",
    "switzerlandnorth",
    "switzerlandwest",
    "swedencentral",
    "polandcentral",
    "italynorth",
    "spaincentral",
    "uaenorth",
    "uaecentral",
    "qatarcentral",
    "israelcentral",
    "southafricanorth",
    "southafricawest",
    "centralindia",
    "southindia",
    "westindia",
    "jioindiawest",
    "jioindiacentral",
    "japaneast",
    "japanwest",
    "koreacentral",
    "koreasouth",
    "eastasia",
    "southeastasia",
    "australiaeast",
    "australiasoutheast",
    "australiacentral",
    "australiacentral2",
    "newzealandnorth",
    "usgovvirginia",
    "usgovarizona",
    "usgovtexas",
    "chinanorth",
    "chinanorth2",
    "chinanorth3",
    "chinaeast",
    "chinaeast2",
    "chinaeast3",
};

const std::vector<std::string_view> kAws = {
    "us-east-1",      "us-east-2",      "us-west-1",      "us-west-2",      "ca-central-1",
    "ca-west-1",      "mx-central-1",   "sa-east-1",      "eu-west-1",      "eu-west-2",
    "eu-west-3",      "eu-central-1",   "eu-central-2",   "eu-north-1",     "eu-south-1",
    "eu-south-2",     "ap-south-1",     "ap-south-2",     "ap-northeast-1", "ap-northeast-2",
    "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-7", "ap-east-1",      "me-south-1",     "me-central-1",
    "af-south-1",     "il-central-1",   "cn-north-1",     "cn-northwest-1", "us-gov-west-1",
    "us-gov-east-1",
};

const std::vector<std::string_view> kGcp = {
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "southamerica-east1",
    "southamerica-west1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "europe-west10",
    "europe-west12",
    "europe-north1",
    "europe-central2",
    "europe-southwest1",
    "me-west1",
    "me-central1",
    "me-central2",
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
};

std::string_view CloudName(std::string_view cloud) {
  if (cloud == "azure") return "Azure";
  if (cloud == "aws") return "AWS";
  if (cloud == "gcp") return "GCP";
  return cloud;
}

std::string_view ListCommand(std::string_view cloud) {
  if (cloud == "azure") return "az account list-locations -o table";
  if (cloud == "aws") return "aws ec2 describe-regions --all-regions";
  return "gcloud compute regions list";
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

const std::vector<std::string_view>& KnownRegions(std::string_view cloud) {
  static const std::vector<std::string_view> kNone;
  if (cloud == "azure") return kAzure;
  if (cloud == "aws") return kAws;
  if (cloud == "gcp") return kGcp;
  return kNone;
}

std::vector<std::string> SuggestRegions(std::string_view cloud, std::string_view region,
                                        size_t max) {
  const size_t limit = std::max<size_t>(2, region.size() / 4);
  std::vector<std::pair<size_t, std::string_view>> close;
  for (std::string_view known : KnownRegions(cloud)) {
    // A long enough start of a name is the closest there is: "westeu" → westeurope first.
    if (region.size() >= 4 && known.starts_with(region)) {
      close.emplace_back(0, known);
    } else if (size_t d = EditDistance(region, known); d <= limit) {
      close.emplace_back(d, known);
    }
  }
  std::stable_sort(close.begin(), close.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (size_t i = 0; i < close.size() && i < max; ++i) out.emplace_back(close[i].second);
  return out;
}

absl::Status ValidateCloudRegion(std::string_view cloud, std::string_view region) {
  static const std::regex kShape("^[a-z0-9][a-z0-9-]{1,40}$");
  if (!std::regex_match(region.begin(), region.end(), kShape)) {
    return absl::InvalidArgumentError(
        "region must be a cloud region name such as eastus or us-east-1 (a-z, 0-9, '-')");
  }
  const auto& known = KnownRegions(cloud);
  if (std::find(known.begin(), known.end(), region) != known.end()) return absl::OkStatus();
  std::vector<std::string> near = SuggestRegions(cloud, region);
  std::string hint = near.empty() ? absl::StrCat("; `", std::string(ListCommand(cloud)),
                                                 "` lists the region names")
                                  : absl::StrCat("; did you mean ", absl::StrJoin(near, ", "), "?");
  return absl::InvalidArgumentError(absl::StrCat("unknown ", std::string(CloudName(cloud)),
                                                 " region '", std::string(region), "'", hint));
}

}  // namespace keyward
