#pragma once
// The CLI's connection to the REST API: server address, token discovery, the call itself and
// printing in the chosen format (human tables or --output json).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/flags.h"

namespace keyward {

// Flags every API command accepts.
extern const std::set<std::string> kCommonValuedFlags;

class ApiClient {
 public:
  // Server: --server, KEYWARD_SERVER, http://127.0.0.1:7070. Token: --token, KEYWARD_TOKEN, or
  // owner.token in --data-dir / KEYWARD_DATA_DIR / ./data. --cacert / KEYWARD_CACERT: the CA
  // that signed an https:// server's certificate (else the system's CAs).
  static std::optional<ApiClient> FromFlags(const ParsedFlags& flags);

  // Returns the JSON answer, or prints the API's error (to stderr; the raw body to stdout with
  // --output json) and returns nullopt.
  std::optional<nlohmann::json> Call(const std::string& method, const std::string& path,
                                     const nlohmann::json* body = nullptr) const;
  bool json_output() const { return json_output_; }
  const std::string& cacert() const { return cacert_; }
  // Prints `value` as JSON when --output json, else runs `human`.
  template <typename F>
  void Print(const nlohmann::json& value, F&& human) const {
    if (json_output_) {
      printf("%s\n", value.dump(2).c_str());
    } else {
      human();
    }
  }

 private:
  std::string server_;
  std::string token_;
  std::string cacert_;  // --cacert / KEYWARD_CACERT: the CA of an https:// server
  bool json_output_ = false;
};

// A table with a header row; column widths fit the content.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);
std::string Str(const nlohmann::json& j, const char* field);

}  // namespace keyward
