#pragma once
// The cloud regions keyward knows, per cloud ("azure", "aws", "gcp"). Key records and clusters
// name a region; one outside these lists is refused when it is given, with the closest known
// names, so a typo ("eastu") never becomes a record that blocks its region.
//
// The lists are compiled in: a region a cloud opens after this build is refused until the list
// here grows (append it to kAzure/kAws/kGcp in regions.cc). Pure functions; thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace keyward {

// Every region known for `cloud`, in list order; empty for an unknown cloud.
const std::vector<std::string_view>& KnownRegions(std::string_view cloud);

// Up to `max` known regions of `cloud` that `region` was probably meant to be: names `region`
// (4+ characters) begins, then names within edit distance 2 (more for long names), closest first.
std::vector<std::string> SuggestRegions(std::string_view cloud, std::string_view region,
                                        size_t max = 3);

// OK for a well-formed, known region of `cloud`; otherwise InvalidArgument such as
// "unknown Azure region 'eastu'; did you mean eastus, eastus2?".
absl::Status ValidateCloudRegion(std::string_view cloud, std::string_view region);

}  // namespace keyward
