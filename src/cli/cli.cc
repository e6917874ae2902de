#include "cli/cli.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "cli/api_client.h"
#include "cli/key_provider_flags.h"
#include "cli/name_resolver.h"

namespace keyward {
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

struct CliCtx {
  const ParsedFlags& flags;
  const ApiClient& api;
  const std::vector<std::string>& pos;  // positional arguments after the verb
};

// A noun's usage; the key create lines come from the KMS provider registry.
std::string UsageOf(const std::string& noun) {
  return noun == "key" ? kUsage.at(noun) + KeyCreateUsage() : kUsage.at(noun);
}

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

std::string KeyCheckLine(const json& check) {
  return absl::StrCat(check.value("ok", false) ? "  ok    " : "  FAIL  ", Str(check, "step"), ": ",
                      Str(check, "message"));
}

void PrintProjects(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : items)
    rows.push_back({Str(p, "id"), Str(p, "name"), p.value("cmek_enabled", false) ? "yes" : "no"});
  PrintTable({"ID", "NAME", "CMEK"}, rows);
}

void PrintKeys(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& k : items) {
    rows.push_back(
        {Str(k, "id"), Str(k, "provider"), Str(k, "region"), Str(k, "state"), Str(k, "key_name")});
  }
  PrintTable({"ID", "PROVIDER", "REGION", "STATE", "KEY"}, rows);
}

// A Galera cluster's every node (the connect line names the first).
void PrintNodeEndpoints(const json& c) {
  const json endpoints = c.value("endpoints", json::array());
  if (!endpoints.is_array() || endpoints.size() < 2) return;
  std::vector<std::string> all;
  for (const auto& e : endpoints) all.push_back(e.is_string() ? e.get<std::string>() : "");
  printf("nodes:    %s   (any node serves reads and writes)\n", absl::StrJoin(all, ", ").c_str());
}

// The connect line's CA placeholder, filled with the CA this CLI trusts when it has one.
std::string WithCaFile(const std::string& connect, const std::string& cacert) {
  return cacert.empty() ? connect : absl::StrReplaceAll(connect, {{"CA_FILE", cacert}});
}

void PrintClusters(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : items) {
    rows.push_back({Str(c, "id"), Str(c, "name"), Str(c, "cloud_provider") + "/" + Str(c, "region"),
                    Str(c, "tier"), Str(c, "state"), Str(c, "endpoint"), Str(c, "durability"),
                    Str(c, "engine")});
  }
  // ENGINE last: scripts that read the columns before it keep working.
  PrintTable({"ID", "NAME", "PLACEMENT", "TIER", "STATE", "ENDPOINT", "DURABILITY", "ENGINE"},
             rows);
}

void PrintEncryption(const json& e) {
  if (!e.is_object() || e.empty()) return;
  auto num = [&](const char* name) {  // RFC 3339 times; null until known
    std::string v = Str(e, name);
    return v.empty() ? std::string("-") : v;
  };
  printf("encryption: %s key %s (%s), version %s, wrapped at %s\n", Str(e, "provider").c_str(),
         Str(e, "key_name").c_str(), Str(e, "key_id").c_str(), Str(e, "key_version").c_str(),
         num("wrapped_at").c_str());
  printf("  dictionary key %s; data keys in use %s\n", Str(e, "dictionary_key_id").c_str(),
         e.value("data_key_ids_in_use", json::array()).dump().c_str());
  std::string error = Str(e, "last_key_check_error");
  printf("  last key check at %s: %s\n", num("last_key_check_at").c_str(),
         error.empty() ? "ok" : error.c_str());
  if (e.contains("reencrypt_progress") && e["reencrypt_progress"].is_object()) {
    printf("  re-encryption: %s\n", e["reencrypt_progress"].dump().c_str());
  }
}

void PrintKeySetup(const json& k) {
  printf("encryption key %s: %s in %s is %s\n", Str(k, "id").c_str(), Str(k, "provider").c_str(),
         Str(k, "region").c_str(), Str(k, "state").c_str());
  const json& s = k.value("setup", json::object());
  std::string warning = Str(s.value("service_identity", json::object()), "warning");
  if (!warning.empty()) printf("\nWARNING: %s\n", warning.c_str());
  // The provider module wrote the human-readable setup (kms/<provider>/).
  std::string text = Str(s, "text");
  if (!text.empty()) printf("\n%s", text.c_str());
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

int KeyProviders(const CliCtx& c) {
  auto r = c.api.Call("GET", "/api/v1/kms-providers");
  if (!r) return 1;
  c.api.Print((*r)["items"], [&] {
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : (*r)["items"]) {
      std::vector<std::string> flags;
      for (const auto& f : p.value("config_fields", json::array())) {
        flags.push_back(Str(f, "cli_flag") + (f.value("required", false) ? "" : "?"));
      }
      rows.push_back({Str(p, "name"), Str(p, "display_name"), Str(p, "cloud"),
                      p.value("configured", false) ? "yes" : "no", absl::StrJoin(flags, " ")});
    }
    PrintTable({"PROVIDER", "NAME", "CLOUD", "CONFIGURED", "FLAGS (? optional)"}, rows);
  });
  return 0;
}

int KeyCommand(const std::string& verb, const CliCtx& c) {
  if (verb == "providers") return KeyProviders(c);
  auto flag = c.flags.Get("project");
  auto project = flag ? ResolveProject(c.api, *flag) : OnlyProject(c.api, "key");
  if (!project) return flag ? 1 : 2;
  std::string base = "/api/v1/projects/" + *project + "/encryption-keys";
  if (verb == "create") {
    auto provider = Need(c, "key", "provider");
    auto region = provider ? Need(c, "key", "region") : std::nullopt;
    if (!region) return 2;
    auto config = ProviderConfigFromFlags(c.flags);
    if (!config.ok()) return Usage("key", std::string(config.status().message()));
    json body = {{"provider", *provider}, {"region", *region}, {"provider_config", *config}};
    auto r = c.api.Call("POST", base, &body);
    if (!r) return 1;
    c.api.Print(*r, [&] { PrintKeySetup(*r); });
    return 0;
  }
  if (verb == "list") {
    auto r = c.api.Call("GET", base);
    if (!r) return 1;
    c.api.Print((*r)["items"], [&] { PrintKeys((*r)["items"]); });
    return 0;
  }
  if (c.pos.size() != 1) return Usage("key", "give exactly one key (ID, key name or region)");
  auto key_id = ResolveKey(c.api, *project, c.pos[0]);
  if (!key_id) return 1;
  if (verb == "get" || verb == "arm-template") {
    auto r = c.api.Call("GET", base + "/" + *key_id);
    if (!r) return 1;
    if (verb == "arm-template") {
      printf("%s\n", (*r)["setup"].value("arm_template", json::object()).dump(2).c_str());
    } else {
      c.api.Print(*r, [&] { PrintKeySetup(*r); });
    }
    return 0;
  }
  if (verb == "update") {
    auto config = ProviderConfigFromFlags(c.flags);
    if (!config.ok()) return Usage("key", std::string(config.status().message()));
    if (config->empty()) return Usage("key", "give at least one setting to change");
    json body = {{"provider_config", *config}};
    auto r = c.api.Call("PATCH", base + "/" + *key_id, &body);
    if (!r) return 1;
    c.api.Print(*r, [&] {
      PrintKeySetup(*r);
      printf("\nthen test it again: keyward key test --project %s %s\n", project->c_str(),
             Str(*r, "id").c_str());
    });
    return 0;
  }
  if (verb == "delete") {
    auto r = c.api.Call("DELETE", base + "/" + *key_id);
    if (!r) return 1;
    c.api.Print(*r, [&] {
      printf("encryption key record %s (%s in %s) deleted; nothing changed in your KMS\n",
             Str(*r, "id").c_str(), Str(*r, "provider").c_str(), Str(*r, "region").c_str());
    });
    return 0;
  }
  if (verb == "test") {
    auto r = c.api.Call("POST", base + "/" + *key_id + ":test");
    if (!r) return 1;
    c.api.Print(*r, [&] {
      printf("encryption key %s is %s\n", Str(*r, "id").c_str(), Str(*r, "state").c_str());
      for (const auto& check : (*r)["checks"]) printf("%s\n", KeyCheckLine(check).c_str());
    });
    return Str(*r, "state") == "active" ? 0 : 1;
  }
  return Usage("key", "unknown command '" + verb + "'");
}

// `cluster delete` destroys the cluster's keys: on a terminal the user types the cluster's name;
// without one (a script) the command refuses unless --yes says the caller means it.
bool ConfirmDelete(const CliCtx& c, const std::string& path) {
  if (isatty(STDIN_FILENO) == 0 || isatty(STDERR_FILENO) == 0) {
    fprintf(stderr,
            "keyward cluster delete: refusing without confirmation: there is no terminal to ask "
            "on; add --yes to delete (its keys are destroyed first: the data cannot be read "
            "again except from its backups)\n");
    return false;
  }
  auto r = c.api.Call("GET", path);
  if (!r) return false;
  std::string name = Str(*r, "name");
  fprintf(stderr,
          "Deleting cluster %s (%s) destroys its keys first, then its files: its data cannot be "
          "read again except from its backups%s.\nType the cluster's name to confirm: ",
          name.c_str(), Str(*r, "id").c_str(),
          c.flags.Has("with-backups") ? ", which --with-backups deletes too"
                                      : " (kept until their retention ends)");
  char line[512] = {};
  if (fgets(line, sizeof line, stdin) == nullptr) return false;
  std::string typed(line);
  while (!typed.empty() && (typed.back() == '\n' || typed.back() == '\r')) typed.pop_back();
  if (typed != name) {
    fprintf(stderr, "keyward cluster delete: not confirmed; nothing deleted\n");
    return false;
  }
  return true;
}

// Polls the cluster until its re-encryption ends, printing progress on stderr.
std::optional<json> WaitForReencrypt(const CliCtx& c, const std::string& path) {
  for (;;) {
    auto r = c.api.Call("GET", path);
    if (!r) return r;
    json p = r->value("encryption", json::object()).value("reencrypt_progress", json());
    std::string state = p.is_object() ? Str(p, "state") : "";
    if (state != "running") {
      if (state == "failed") fprintf(stderr, "re-encryption failed: %s\n", Str(p, "error").c_str());
      return r;
    }
    fprintf(stderr, "\rre-encrypting: %s of %s files", Str(p, "files_done").c_str(),
            Str(p, "files_total").c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int ClusterCommand(const std::string& verb, const CliCtx& c) {
  if (verb == "create") {
    auto name = Need(c, "cluster", "name");
    if (!name) return 2;
    json body = {{"name", *name}};
    std::string path = "/api/v1/clusters";
    if (auto p = c.flags.Get("project")) {
      auto project_id = ResolveProject(c.api, *p);
      if (!project_id) return 1;
      path = "/api/v1/projects/" + *project_id + "/clusters";
      for (const char* f : {"cloud", "region", "tier"}) {
        if (!c.flags.Get(f))
          return Usage("cluster", absl::StrCat("--", f, " is required with --project"));
      }
    }
    if (auto v = c.flags.Get("cloud")) body["cloud_provider"] = *v;
    if (auto v = c.flags.Get("region")) body["region"] = *v;
    if (auto v = c.flags.Get("tier")) body["tier"] = *v;
    if (auto v = c.flags.Get("durability")) body["durability"] = *v;
    if (auto v = c.flags.Get("engine")) body["engine"] = *v;
    if (auto v = c.flags.Get("nodes")) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(*v, &n)) {
        return Usage("cluster", absl::StrCat("--nodes takes a number (1 or 3), not '", *v, "'"));
      }
      body["nodes"] = n;
    }
    auto r = c.api.Call("POST", path, &body);
    if (!r) return 1;
    c.api.Print(*r, [&] {
      std::string endpoint = Str(*r, "endpoint");
      printf("cluster %s (%s) is %s on %s/%s, engine %s, encrypted under key %s, durability %s\n",
             Str(*r, "id").c_str(), Str(*r, "name").c_str(), Str(*r, "state").c_str(),
             Str(*r, "cloud_provider").c_str(), Str(*r, "region").c_str(),
             Str(*r, "engine").c_str(), Str(*r, "encryption_key_id").c_str(),
             Str(*r, "durability").c_str());
      printf("endpoint: %s\npassword: %s   (shown once; keep it)\n", endpoint.c_str(),
             Str(*r, "password").c_str());
      if (Str(*r, "engine") == "mariadb") {
        PrintNodeEndpoints(*r);
        printf("connect:  %s   (enter the password above)\n",
               WithCaFile(Str(*r, "connect"), c.api.cacert()).c_str());
      } else {
        // A TLS endpoint: the CA this CLI trusts for the API (the same private CA with
        // --tls-self-signed), else a placeholder for the operator's.
        std::string tls = !r->value("tls", false)
                              ? ""
                              : absl::StrCat(" --tls --cacert ",
                                             c.api.cacert().empty() ? "CA_FILE" : c.api.cacert());
        printf("connect:  redis-cli -h %s -p %s%s --user default --pass %s\n",
               endpoint.substr(0, endpoint.rfind(':')).c_str(),
               endpoint.substr(endpoint.rfind(':') + 1).c_str(), tls.c_str(),
               Str(*r, "password").c_str());
      }
    });
    return 0;
  }
  std::optional<std::string> project_id;
  if (auto p = c.flags.Get("project")) {
    project_id = ResolveProject(c.api, *p);
    if (!project_id) return 1;
  }
  if (verb == "list") {
    if (!project_id) {
      // The caller's only project; with several, the organization's default project as before.
      auto projects = ListAll(c.api, "/api/v1/projects");
      if (!projects) return 1;
      if (projects->size() == 1) project_id = Str((*projects)[0], "id");
    }
    auto items = ListAll(c.api, project_id ? "/api/v1/projects/" + *project_id + "/clusters"
                                           : std::string("/api/v1/clusters"));
    if (!items) return 1;
    json shown = json::array();
    for (const auto& k : *items) {
      if (c.flags.Has("all") || Str(k, "state") != "deleted") shown.push_back(k);
    }
    c.api.Print(shown, [&] { PrintClusters(shown); });
    return 0;
  }
  if (c.pos.size() != 1) return Usage("cluster", "give exactly one cluster (name or ID)");
  auto cluster_id = ResolveCluster(c.api, c.pos[0], project_id);
  if (!cluster_id) return 1;
  std::string path = "/api/v1/clusters/" + *cluster_id;
  std::optional<json> r;
  if (verb == "get") {
    r = c.api.Call("GET", path);
  } else if (verb == "delete") {
    if (!c.flags.Has("yes") && !ConfirmDelete(c, path)) return 2;
    r = c.api.Call("DELETE", c.flags.Has("with-backups") ? path + "?with_backups=true" : path);
  } else if (verb == "pause" || verb == "resume" || verb == "rotate-dictionary-key" ||
             verb == "reencrypt" || verb == "reset-password") {
    r = c.api.Call("POST", path + ":" + verb);
    if (r && verb == "reencrypt" && c.flags.Has("wait")) r = WaitForReencrypt(c, path);
  } else if (verb == "repair") {
    json body = {{"accept_data_loss", c.flags.Has("accept-data-loss")}};
    r = c.api.Call("POST", path + ":repair", &body);
    if (r) {
      c.api.Print(*r, [&] {
        PrintClusters(json::array({*r}));
        printf("repaired: %s\n", Str((*r)["repair"], "summary").c_str());
      });
      return 0;
    }
  } else if (verb == "backup-policy") {
    auto schedule = Need(c, "cluster", "schedule");
    auto days = schedule ? Need(c, "cluster", "retention-days") : std::nullopt;
    if (!days) return 2;
    json body = {{"schedule", *schedule}, {"retention_days", std::atoi(days->c_str())}};
    if (c.flags.Has("dual-region")) {
      body["dual_region"] = {{"enabled", true},
                             {"secondary_region", c.flags.Get("secondary-region").value_or("")}};
    }
    r = c.api.Call("PUT", path + "/backup-policy", &body);
  } else {
    return Usage("cluster", "unknown command '" + verb + "'");
  }
  if (!r) return 1;
  c.api.Print(*r, [&] {
    PrintClusters(json::array({*r}));
    if (verb == "delete") {
      printf("its wrapped keys were destroyed first, then its files\n");
      std::string backups = Str(r->value("backups", json::object()), "message");
      if (!backups.empty()) printf("%s\n", backups.c_str());
    }
    if (verb != "delete") PrintEncryption(r->value("encryption", json::object()));
    if (verb == "get") PrintNodeEndpoints(*r);
    if (verb == "get" && !Str(*r, "connect").empty()) {
      printf("connect: %s\n", WithCaFile(Str(*r, "connect"), c.api.cacert()).c_str());
    }
    if (verb == "reset-password") {
      printf("new password: %s   (shown once; the old one no longer works)\n",
             Str(*r, "password").c_str());
    }
  });
  return 0;
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

}  // namespace

int RunCli(const std::string& noun, const std::vector<std::string>& args) {
  static const std::map<std::string, std::function<int(const std::string&, const CliCtx&)>> kNouns =
      {{"project", ProjectCommand},
       {"key", KeyCommand},
       {"cluster", ClusterCommand},
       {"audit", AuditCommand}};
  std::set<std::string> valued = kCommonValuedFlags;
  for (const char* f : {"name", "project", "provider", "region", "cloud", "tier", "role",
                        "token-ttl", "schedule", "retention-days", "secondary-region", "since-ms",
                        "until-ms", "durability", "engine", "nodes"}) {
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

}  // namespace keyward
