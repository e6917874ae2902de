#include "api/rest_server.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "api/openapi_document.h"

namespace keyward {
namespace {

// The route table the server registers and the OpenAPI document it serves name the same
// (method, path) pairs, in both directions.
TEST(RestServer, OpenApiDocumentMatchesRouteTable) {
  nlohmann::json doc = nlohmann::json::parse(OpenApiDocument());
  std::set<std::string> documented;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      if (method == "parameters") continue;
      std::string upper;
      for (char c : method) upper.push_back(static_cast<char>(std::toupper(c)));
      documented.insert(upper + " " + path);
    }
  }
  std::set<std::string> served;
  for (const auto& r : RestServer::Routes()) served.insert(r.method + " " + r.path);
  EXPECT_EQ(documented, served);
  EXPECT_GE(served.size(), 20u);
}

// /metrics is open to loopback peers only; anything else needs a token, garbage included.
TEST(RestServer, MetricsAuthDecisionFailsClosed) {
  for (const char* a : {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  using namespace std::string_view_literals;
  for (std::string_view a :
       {""sv, "10.0.0.1"sv, "128.0.0.1"sv, "0.0.0.0"sv, "::"sv, "::2"sv, "::ffff:10.0.0.1"sv,
        "fe80::1"sv, "localhost"sv, "127.0.0.1 "sv, "127.0.0.1\0x"sv, "1.127.0.0"sv}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

}  // namespace
}  // namespace keyward
