#include "cli/cli.h"

#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli/flags.h"
#include "util/file_util.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr char kClusterHelp[] = R"(usage: keyward cluster <create|list|get|delete> [flags]

  keyward cluster create --name NAME    create a cluster; prints its endpoint and password
  keyward cluster list                  list clusters
  keyward cluster get ID                show one cluster
  keyward cluster delete ID             delete a cluster and crypto-shred its data

common flags:
  --server URL     API address (env KEYWARD_SERVER, default http://127.0.0.1:7070)
  --token T        API token (env KEYWARD_TOKEN; default: the owner token in
                   --data-dir, env KEYWARD_DATA_DIR, or ./data)
  --data-dir DIR   where to find owner.token when no token is given
  --output FORMAT  table (default) or json
)";

struct Client {
  std::string server;
  std::string token;
  bool json_output = false;
};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Returns the body as JSON, or prints the API's error and returns nullopt.
std::optional<json> Call(const Client& c, const std::string& method, const std::string& path,
                         const std::string& body, int* status) {
  httplib::Client http(c.server);
  http.set_connection_timeout(5);
  http.set_read_timeout(120);
  httplib::Headers headers = {{"Authorization", "Bearer " + c.token}};
  httplib::Result res = method == "POST"     ? http.Post(path, headers, body, "application/json")
                        : method == "DELETE" ? http.Delete(path, headers)
                                             : http.Get(path, headers);
  if (!res) {
    fprintf(stderr, "keyward: cannot reach %s (%s); is `keyward serve` running? (--server)\n",
            c.server.c_str(), httplib::to_string(res.error()).c_str());
    return std::nullopt;
  }
  *status = res->status;
  json j = json::parse(res->body, nullptr, false);
  if (res->status >= 400) {
    std::string msg = j.is_object() && j.contains("error") ? j["error"].value("message", res->body)
                                                           : res->body;
    if (c.json_output) {
      fprintf(stdout, "%s\n", res->body.c_str());
    }
    fprintf(stderr, "keyward: %s (HTTP %d)\n", msg.c_str(), res->status);
    return std::nullopt;
  }
  if (j.is_discarded()) {
    fprintf(stderr, "keyward: server answered something that is not JSON\n");
    return std::nullopt;
  }
  return j;
}

void PrintClusters(const json& items) {
  printf("%-20s %-24s %-12s %s\n", "ID", "NAME", "STATE", "ENDPOINT");
  for (const auto& c : items) {
    printf("%-20s %-24s %-12s %s\n", c.value("id", "").c_str(), c.value("name", "").c_str(),
           c.value("state", "").c_str(), c.value("endpoint", "").c_str());
  }
}

}  // namespace

int RunClusterCommand(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, {"server", "token", "data-dir", "output", "name"}, {"help"});
  if (!flags.ok()) {
    fprintf(stderr, "keyward cluster: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->Has("help") || flags->positional.empty()) {
    fputs(kClusterHelp, flags->Has("help") ? stdout : stderr);
    return flags->Has("help") ? 0 : 2;
  }
  Client c;
  c.server = flags->Get("server").value_or(Env("KEYWARD_SERVER"));
  if (c.server.empty()) c.server = "http://127.0.0.1:7070";
  c.token = flags->Get("token").value_or(Env("KEYWARD_TOKEN"));
  if (c.token.empty()) {
    std::string dir = flags->Get("data-dir").value_or(Env("KEYWARD_DATA_DIR"));
    if (dir.empty()) dir = "./data";
    auto t = ReadFileToString(dir + "/owner.token", 4096);
    if (t.ok()) {
      c.token = *t;
      while (!c.token.empty() && (c.token.back() == '\n' || c.token.back() == '\r')) c.token.pop_back();
    }
  }
  std::string output = flags->Get("output").value_or("table");
  if (output != "table" && output != "json") {
    fprintf(stderr, "keyward cluster: --output must be table or json\n");
    return 2;
  }
  c.json_output = output == "json";

  const std::string& verb = flags->positional[0];
  int status = 0;
  if (verb == "create") {
    auto name = flags->Get("name");
    if (!name || name->empty()) {
      fprintf(stderr, "keyward cluster create: --name is required\n");
      return 2;
    }
    auto j = Call(c, "POST", "/api/v1/clusters", json{{"name", *name}}.dump(), &status);
    if (!j) return 1;
    if (c.json_output) {
      printf("%s\n", j->dump().c_str());
    } else {
      std::string endpoint = j->value("endpoint", "");
      std::string port = endpoint.substr(endpoint.rfind(':') + 1);
      printf("cluster %s (%s) is %s\n", j->value("id", "").c_str(), j->value("name", "").c_str(),
             j->value("state", "").c_str());
      printf("endpoint: %s\npassword: %s   (shown once; keep it)\n", endpoint.c_str(),
             j->value("password", "").c_str());
      printf("connect:  redis-cli -p %s --user default --pass %s\n", port.c_str(),
             j->value("password", "").c_str());
    }
    return 0;
  }
  if (verb == "list") {
    auto j = Call(c, "GET", "/api/v1/clusters", "", &status);
    if (!j) return 1;
    if (c.json_output) {
      printf("%s\n", (*j)["items"].dump().c_str());
    } else {
      PrintClusters((*j)["items"]);
    }
    return 0;
  }
  if (verb == "get" || verb == "delete") {
    if (flags->positional.size() != 2) {
      fprintf(stderr, "keyward cluster %s: give exactly one cluster ID\n", verb.c_str());
      return 2;
    }
    const std::string& id = flags->positional[1];
    auto j = Call(c, verb == "get" ? "GET" : "DELETE", "/api/v1/clusters/" + id, "", &status);
    if (!j) return 1;
    if (c.json_output) {
      printf("%s\n", j->dump().c_str());
    } else if (verb == "get") {
      PrintClusters(json::array({*j}));
    } else {
      printf("cluster %s deleted; its keys were destroyed first\n", id.c_str());
    }
    return 0;
  }
  fprintf(stderr, "keyward cluster: unknown command '%s'\n%s", verb.c_str(), kClusterHelp);
  return 2;
}

}  // namespace keyward
