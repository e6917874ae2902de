#include "api/request_body.h"

#include "absl/strings/str_cat.h"

namespace keyward {
namespace {

const char* TypeName(FieldType t) {
  switch (t) {
    case FieldType::kString:
      return "a string";
    case FieldType::kBool:
      return "true or false";
    case FieldType::kInt:
      return "a whole number";
    case FieldType::kObject:
      return "an object";
  }
  return "";
}

bool HasType(const nlohmann::json& v, FieldType t) {
  switch (t) {
    case FieldType::kString:
      return v.is_string();
    case FieldType::kBool:
      return v.is_boolean();
    case FieldType::kInt:
      return v.is_number_integer();
    case FieldType::kObject:
      return v.is_object();
  }
  return false;
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseBody(const std::string& body,
                                         const std::map<std::string, FieldSpec>& fields,
                                         const std::string& prefix) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("request body must be a JSON object");
  }
  for (const auto& [k, v] : j.items()) {
    auto it = fields.find(k);
    if (it == fields.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown field '", prefix, k, "'"));
    }
    if (!HasType(v, it->second.type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("field '", prefix, k, "' must be ", TypeName(it->second.type)));
    }
  }
  for (const auto& [k, spec] : fields) {
    if (spec.required && !j.contains(k)) {
      return absl::InvalidArgumentError(
          absl::StrCat("field '", prefix, k, "' is required and must be ", TypeName(spec.type)));
    }
  }
  return j;
}

}  // namespace keyward
