#include "cli/api_client.h"

#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/key_provider_flags.h"
#include "util/file_util.h"

namespace keyward {

using nlohmann::json;

const std::set<std::string> kCommonValuedFlags = {"server", "token", "data-dir", "output",
                                                  "cacert"};

namespace {
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The API's errors name request fields; a CLI user typed flags. Longest phrases first, so
// "cmek_enabled=true" is read before "cmek_enabled".
std::string InCliWords(std::string message) {
  static const std::pair<const char*, const char*> kWords[] = {
      {"set dual_region.enabled to false", "leave out --dual-region"},
      {"dual_region.secondary_region", "--secondary-region"},
      {"dual_region.enabled", "--dual-region"},
      {"cmek_enabled=true", "--cmek"},
      {"cmek_enabled=false", "--cmek false"},
      {"cmek_enabled", "--cmek"},
      {"secondary_region", "--secondary-region"},
      {"retention_days", "--retention-days"},
      {"cloud_provider", "--cloud"},
      {"token_ttl_seconds", "--token-ttl"},
      {"accept_data_loss", "--accept-data-loss"},
      {"with_backups", "--with-backups"},
  };
  for (const auto& [field, flag] : kWords) {
    for (size_t at = message.find(field); at != std::string::npos;
         at = message.find(field, at + strlen(flag))) {
      message.replace(at, strlen(field), flag);
    }
  }
  return KeyProviderFieldsAsFlags(std::move(message));  // the KMS providers' own fields
}
}  // namespace

std::optional<ApiClient> ApiClient::FromFlags(const ParsedFlags& flags) {
  ApiClient c;
  c.server_ = flags.Get("server").value_or(Env("KEYWARD_SERVER"));
  if (c.server_.empty()) c.server_ = "http://127.0.0.1:7070";
  c.token_ = flags.Get("token").value_or(Env("KEYWARD_TOKEN"));
  if (c.token_.empty()) {
    std::string dir = flags.Get("data-dir").value_or(Env("KEYWARD_DATA_DIR"));
    if (dir.empty()) dir = "./data";
    auto t = ReadFileToString(dir + "/owner.token", 4096);
    if (t.ok()) c.token_ = *t;
    while (!c.token_.empty() && (c.token_.back() == '\n' || c.token_.back() == '\r'))
      c.token_.pop_back();
  }
  c.cacert_ = flags.Get("cacert").value_or(Env("KEYWARD_CACERT"));
  std::string output = flags.Get("output").value_or("table");
  if (output != "table" && output != "json") {
    fprintf(stderr, "keyward: --output must be table or json\n");
    return std::nullopt;
  }
  c.json_output_ = output == "json";
  return c;
}

std::optional<json> ApiClient::Call(const std::string& method, const std::string& path,
                                    const json* body) const {
  httplib::Client http(server_);
  if (server_.rfind("https://", 0) == 0) {
    http.enable_server_certificate_verification(true);
    if (!cacert_.empty()) http.set_ca_cert_path(cacert_.c_str());
  }
  http.set_connection_timeout(5);
  http.set_read_timeout(120);
  httplib::Headers headers = {{"Authorization", "Bearer " + token_}};
  std::string payload = body ? body->dump() : "";
  httplib::Result res = method == "POST"    ? http.Post(path, headers, payload, "application/json")
                        : method == "PUT"   ? http.Put(path, headers, payload, "application/json")
                        : method == "PATCH" ? http.Patch(path, headers, payload, "application/json")
                        : method == "DELETE" ? http.Delete(path, headers)
                                             : http.Get(path, headers);
  if (!res) {
    if (res.error() == httplib::Error::SSLServerVerification) {
      fprintf(stderr,
              "keyward: the certificate of %s is not trusted: give the CA that signed it with "
              "--cacert FILE (env KEYWARD_CACERT; --tls-self-signed servers: DATA/tls/ca.pem)\n",
              server_.c_str());
    } else if (res.error() == httplib::Error::SSLConnection && server_.rfind("https://", 0) == 0) {
      fprintf(stderr, "keyward: TLS with %s failed (%s); is it an HTTPS server? (--server)\n",
              server_.c_str(), httplib::to_string(res.error()).c_str());
    } else {
      fprintf(stderr, "keyward: cannot reach %s (%s); is `keyward serve` running? (--server)\n",
              server_.c_str(), httplib::to_string(res.error()).c_str());
    }
    return std::nullopt;
  }
  json j = json::parse(res->body, nullptr, false);
  if (res->status >= 400) {
    std::string msg =
        j.is_object() && j.contains("error") ? j["error"].value("message", res->body) : res->body;
    if (json_output_) printf("%s\n", res->body.c_str());
    fprintf(stderr, "keyward: %s (HTTP %d)\n", InCliWords(msg).c_str(), res->status);
    if (res->status == 401) {
      fprintf(stderr,
              "keyward: pass a token with --token or KEYWARD_TOKEN (the owner token is in "
              "<data-dir>/owner.token)\n");
    }
    return std::nullopt;
  }
  if (j.is_discarded()) {
    fprintf(stderr, "keyward: the server answered something that is not JSON\n");
    return std::nullopt;
  }
  return j;
}

std::string Str(const json& j, const char* field) {
  if (!j.contains(field) || j[field].is_null()) return "";
  if (j[field].is_string()) return j[field].get<std::string>();
  return j[field].dump();
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    printf("%s\n", out.c_str());
  };
  line(header);
  for (const auto& r : rows) line(r);
}

}  // namespace keyward
