#pragma once
// Strict reading of JSON request bodies: an object, only known fields, each of the right type.
// Every failure is an InvalidArgument naming the field and what it must be.

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace keyward {

enum class FieldType { kString, kBool, kInt, kObject };

struct FieldSpec {
  FieldType type;
  bool required;
};

absl::StatusOr<nlohmann::json> ParseBody(const std::string& body,
                                         const std::map<std::string, FieldSpec>& fields,
                                         const std::string& prefix = "");

}  // namespace keyward
