#include "cli/cli.h"

#include <cstdio>
#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "cli/api_client.h"
#include "cli/cli_commands.h"
#include "cli/key_provider_flags.h"
#include "cli/name_resolver.h"

namespace keyward {
namespace cli_commands {
namespace {

using nlohmann::json;

constexpr char kCommon[] = R"(
common flags:
  --server URL     API address (env KEYWARD_SERVER, default http://127.0.0.1:7070)
  --token T        API token (env KEYWARD_TOKEN; default: owner.token in --data-dir,
                   env KEYWARD_DATA_DIR, or ./data)
  --output FORMAT  table (default) or json
  --cacert FILE    CA certificate of an https:// server (env KEYWARD_CACERT)
  Global flags may also come before the command: keyward --server URL cluster list.
  Projects, clusters and keys can be named by name or id; --project may be left out when
  you can see exactly one project.
)";

const std::map<std::string, std::string> kUsage = {
    {"project", R"(usage:
  keyward project create --name N [--cmek]      CMEK can only be chosen here (organization owners)
  keyward project list
  keyward project get ID
  keyward project update ID [--name N] [--cmek true|false]
  keyward project add-member ID --name N --role project_owner|project_member|project_viewer
                             [--token-ttl SECONDS]
)"},
    {"key", R"(usage:
  keyward key providers                       the KMS providers, their fields and regions
  keyward key list --project P
  keyward key get --project P KEY_ID          setup instructions again
  keyward key test --project P KEY_ID         "Test encryption key and create"
  keyward key arm-template --project P KEY_ID the ARM template alone, for az deployment
  keyward key update --project P KEY_ID [any of the provider's flags below]
                     fix a key no cluster uses; it goes back to pending: test it again
                     (a new prefix gets a new suffix; "" clears an optional setting)
  keyward key delete --project P KEY_ID       remove a key no cluster uses (paused ones count);
                                              its region can then get a new key
)"},
    {"cluster", R"(usage:
  keyward cluster create --name N [--project P --cloud aws|azure|gcp --region R
                         --tier dedicated|starter]    (no --project: the default project)
                         [--durability always|everysec|none]   when a write is acknowledged:
                         WAL synced first | synced once a second | the OS decides
                         (default: the server's --durability)
                         [--engine kv|mariadb]   kv: Redis protocol (default); mariadb: a
                         MySQL-compatible MariaDB server, encrypted under the same keys
                         [--nodes 1|3]   mariadb only: 3 = a MariaDB Galera cluster (any
                         node serves reads and writes; it survives the loss of one)
  keyward cluster list [--project P] [--all]     --all: deleted clusters too
  keyward cluster get|pause|resume ID            get shows how the data is protected now
  keyward cluster delete ID [--with-backups] [--yes]
                         crypto-shreds it; says what happens to its backups (kept until
                         their retention ends, unless --with-backups). Asks on a terminal;
                         elsewhere (scripts) it needs --yes
  keyward cluster rotate-dictionary-key ID       new dictionary key, dictionary re-sealed
  keyward cluster reset-password ID              new password (shown once); the old one is
                         refused and open connections are closed
  keyward cluster reencrypt ID [--wait]          rewrite every file under a new data key
  keyward cluster repair ID --accept-data-loss   a cluster with damaged files (state_cause
                         corruption) back to its last consistent point; says what was dropped
  keyward cluster backup-policy ID --schedule daily --retention-days 7
                         [--dual-region --secondary-region R]
)"},
    {"audit", R"(usage:
  keyward audit list --project P [--since-ms T] [--until-ms T]
)"},
};

// A noun's usage; the key create lines come from the KMS provider registry.
std::string UsageOf(const std::string& noun) {
  return noun == "key" ? kUsage.at(noun) + KeyCreateUsage() : kUsage.at(noun);
}

}  // namespace

int Usage(const std::string& noun, const std::string& problem) {
  fprintf(stderr, "keyward %s: %s\n%s%s", noun.c_str(), problem.c_str(), UsageOf(noun).c_str(),
          kCommon);
  return 2;
}

std::optional<std::string> Need(const CliCtx& c, const std::string& noun, const char* flag) {
  auto v = c.flags.Get(flag);
  if (!v || v->empty()) {
    Usage(noun, absl::StrCat("--", flag, " is required"));
    return std::nullopt;
  }
  return v;
}

namespace {

void PrintProjects(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : items)
    rows.push_back({Str(p, "id"), Str(p, "name"), p.value("cmek_enabled", false) ? "yes" : "no"});
  PrintTable({"ID", "NAME", "CMEK"}, rows);
}

int ProjectCommand(const std::string& verb, const CliCtx& c) {
  if (verb == "create") {
    auto name = Need(c, "project", "name");
    if (!name) return 2;
    json body = {{"name", *name},
                 {"cmek_enabled", c.flags.Get("cmek").value_or("false") == "true"}};
    auto r = c.api.Call("POST", "/api/v1/projects", &body);
    if (!r) return 1;
    c.api.Print(*r, [&] { PrintProjects(json::array({*r})); });
    return 0;
  }
  if (verb == "list") {
    auto r = c.api.Call("GET", "/api/v1/projects");
    if (!r) return 1;
    c.api.Print((*r)["items"], [&] { PrintProjects((*r)["items"]); });
    return 0;
  }
  if (c.pos.size() != 1) return Usage("project", "give exactly one project (name or ID)");
  auto project_id = ResolveProject(c.api, c.pos[0]);
  if (!project_id) return 1;
  std::string path = "/api/v1/projects/" + *project_id;
  if (verb == "get" || verb == "update") {
    json body = json::object();
    if (auto n = c.flags.Get("name")) body["name"] = *n;
    if (auto m = c.flags.Get("cmek")) body["cmek_enabled"] = *m == "true";
    auto r = verb == "get" ? c.api.Call("GET", path) : c.api.Call("PATCH", path, &body);
    if (!r) return 1;
    c.api.Print(*r, [&] { PrintProjects(json::array({*r})); });
    return 0;
  }
  if (verb == "add-member") {
    auto name = Need(c, "project", "name");
    auto role = name ? Need(c, "project", "role") : std::nullopt;
    if (!role) return 2;
    json body = {{"name", *name}, {"role", *role}};
    if (auto ttl = c.flags.Get("token-ttl")) body["token_ttl_seconds"] = std::atoll(ttl->c_str());
    auto r = c.api.Call("POST", path + "/members", &body);
    if (!r) return 1;
    c.api.Print(*r, [&] {
      printf("member %s (%s) added as %s\ntoken: %s   (shown once; keep it)\n",
             Str(*r, "name").c_str(), Str(*r, "user_id").c_str(), Str(*r, "role").c_str(),
             Str(*r, "token").c_str());
    });
    return 0;
  }
  return Usage("project", "unknown command '" + verb + "'");
}

int AuditCommand(const std::string& verb, const CliCtx& c) {
  if (verb != "list") return Usage("audit", "unknown command '" + verb + "'");
  auto flag = c.flags.Get("project");
  auto project = flag ? ResolveProject(c.api, *flag) : OnlyProject(c.api, "audit");
  if (!project) return flag ? 1 : 2;
  std::string path = "/api/v1/projects/" + *project + "/audit-events?page_size=500";
  if (auto s = c.flags.Get("since-ms")) path += "&since_ms=" + *s;
  if (auto u = c.flags.Get("until-ms")) path += "&until_ms=" + *u;
  auto r = c.api.Call("GET", path);
  if (!r) return 1;
  c.api.Print((*r)["items"], [&] {
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : (*r)["items"]) {
      rows.push_back({Str(e, "time"), Str(e, "actor"), Str(e, "action"), Str(e, "target"),
                      Str(e, "result"), Str(e, "message").substr(0, 80)});
    }
    PrintTable({"TIME", "ACTOR", "ACTION", "TARGET", "RESULT", "MESSAGE"}, rows);
  });
  return 0;
}

// RunCli's body, among the commands it dispatches to.
int RunNoun(const std::string& noun, const std::vector<std::string>& args) {
  static const std::map<std::string, std::function<int(const std::string&, const CliCtx&)>> kNouns =
      {{"project", ProjectCommand},
       {"key", KeyCommand},
       {"cluster", ClusterCommand},
       {"audit", AuditCommand}};
  std::set<std::string> valued = kCommonValuedFlags;
  for (const char* f :
       {"name", "project", "provider", "region", "cloud", "tier", "role", "token-ttl", "schedule",
        "retention-days", "secondary-region", "since-ms", "until-ms", "durability", "engine", "nodes"}) {
    valued.insert(f);
  }
  std::vector<std::string> rest = args;
  // --cmek may stand alone (create) or take true/false (update).
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == "--cmek" &&
        (i + 1 >= rest.size() || (rest[i + 1] != "true" && rest[i + 1] != "false"))) {
      rest[i] = "--cmek=true";
    }
  }
  valued.insert("cmek");
  for (const std::string& f : KeyProviderFlagNames()) valued.insert(f);
  auto flags =
      ParseFlags(rest, valued,
                 {"help", "dual-region", "wait", "accept-data-loss", "with-backups", "yes", "all"});
  if (!flags.ok()) return Usage(noun, std::string(flags.status().message()));
  if (flags->Has("help")) {
    printf("%s%s", UsageOf(noun).c_str(), kCommon);
    return 0;
  }
  if (flags->positional.empty()) return Usage(noun, "which command?");
  auto api = ApiClient::FromFlags(*flags);
  if (!api) return 2;
  std::vector<std::string> pos(flags->positional.begin() + 1, flags->positional.end());
  CliCtx ctx{*flags, *api, pos};
  return kNouns.at(noun)(flags->positional[0], ctx);
}

}  // namespace
}  // namespace cli_commands

int RunCli(const std::string& noun, const std::vector<std::string>& args) {
  return cli_commands::RunNoun(noun, args);
}

}  // namespace keyward
