// `keyward cluster …`: create (the connect command shown once), list, get, pause, resume,
// delete (confirmed), key and password rotation, re-encryption, repair, backup policy.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "cli/cli_commands.h"
#include "cli/name_resolver.h"

namespace keyward::cli_commands {
namespace {

using nlohmann::json;

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

}  // namespace

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

}  // namespace keyward::cli_commands
