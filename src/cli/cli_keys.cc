// `keyward key …`: the KMS providers, and a project's encryption-key records (create with the
// provider's own flags, setup instructions, test, update, delete).
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli_commands.h"
#include "cli/key_provider_flags.h"
#include "cli/name_resolver.h"

namespace keyward::cli_commands {
namespace {

using nlohmann::json;

std::string KeyCheckLine(const json& check) {
  return absl::StrCat(check.value("ok", false) ? "  ok    " : "  FAIL  ", Str(check, "step"), ": ",
                      Str(check, "message"));
}

void PrintKeys(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& k : items) {
    rows.push_back(
        {Str(k, "id"), Str(k, "provider"), Str(k, "region"), Str(k, "state"), Str(k, "key_name")});
  }
  PrintTable({"ID", "PROVIDER", "REGION", "STATE", "KEY"}, rows);
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

}  // namespace

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

}  // namespace keyward::cli_commands
