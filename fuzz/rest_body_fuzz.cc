// Arbitrary bytes as a REST request body, read with the field specs the routes use
// (src/api/rest_server.cc: cluster create/update, members, key settings, instances, backups),
// nested objects included the way the routes read them: every outcome must be a value or an
// InvalidArgument, never an exception, a crash or an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "api/request_body.h"

namespace {

using keyward::FieldSpec;
using F = keyward::FieldType;
using Spec = std::map<std::string, FieldSpec>;

// Copied from rest_server.cc's route table; a route that adds a spec adds it here.
const std::vector<Spec>& TopLevelSpecs() {
  static const auto* specs = new std::vector<Spec>{
      {{"name", {F::kString, true}}, {"cmek_enabled", {F::kBool, false}}},
      {{"name", {F::kString, false}}, {"cmek_enabled", {F::kBool, false}}},
      {{"name", {F::kString, true}},
       {"role", {F::kString, true}},
       {"token_ttl_seconds", {F::kInt, false}}},
      {{"provider", {F::kString, true}},
       {"region", {F::kString, true}},
       {"azure", {F::kObject, false}},
       {"aws", {F::kObject, false}}},
      {{"name", {F::kString, true}},
       {"cloud_provider", {F::kString, true}},
       {"region", {F::kString, true}},
       {"tier", {F::kString, true}}},
      {{"schedule", {F::kString, true}},
       {"retention_days", {F::kInt, true}},
       {"dual_region", {F::kObject, false}}},
  };
  return *specs;
}

const Spec kAzure = {{"key_vault_name", {F::kString, false}},
                     {"managed_hsm_name", {F::kString, false}},
                     {"key_name_prefix", {F::kString, true}},
                     {"subscription_id", {F::kString, false}},
                     {"resource_group", {F::kString, false}}};
const Spec kAws = {{"key_arn", {F::kString, true}}};
const Spec kDualRegion = {{"enabled", {F::kBool, true}}, {"secondary_region", {F::kString, false}}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  for (const Spec& spec : TopLevelSpecs()) {
    auto parsed = keyward::ParseBody(body, spec);
    if (!parsed.ok()) {
      if (parsed.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
      continue;
    }
    // The routes re-read nested objects from their dump, with a prefix for the messages.
    for (const auto& [field, nested, prefix] :
         {std::tuple{"azure", &kAzure, "azure."}, std::tuple{"aws", &kAws, "aws."},
          std::tuple{"dual_region", &kDualRegion, "dual_region."}}) {
      if (parsed->contains(field) && (*parsed)[field].is_object()) {
        auto inner = keyward::ParseBody((*parsed)[field].dump(), *nested, prefix);
        if (!inner.ok() && inner.status().code() != absl::StatusCode::kInvalidArgument) {
          __builtin_trap();
        }
      }
    }
  }
  return 0;
}
