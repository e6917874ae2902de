#pragma once
// docs/openapi.json, embedded at build time and served at /api/v1/openapi.json.

#include <string>

namespace keyward {

const std::string& OpenApiDocument();

}  // namespace keyward
