// `keyward token …`, `keyward member …` and `keyward user …`: the REST API's account routes
// (see README "Who may do what") from the command line.

#include <cstdio>
#include <cstdlib>

#include "cli/api_client.h"
#include "cli/cli.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr char kAccountsUsage[] = R"(usage:
  keyward token list                          your tokens (id, kind, expiry; never the token)
  keyward token create --ttl SECONDS          a new token for yourself (at most a year)
  keyward token revoke TOKEN_ID               its next use is refused
  keyward token rotate-owner                  organization owner: a new owner token, written to
                                              owner.token in the server's data dir
  keyward member list --project P
  keyward member set-role USER_ID --project P --role project_owner|project_member|project_viewer
  keyward member remove USER_ID --project P   a user left in no project loses every token
  keyward user allow-project-create USER_ID [--revoke]   organization owner: the
                                              project_creator role

common flags:
  --server URL     API address (env KEYWARD_SERVER, default http://127.0.0.1:7070)
  --token T        API token (env KEYWARD_TOKEN; default: owner.token in --data-dir)
  --output FORMAT  table (default) or json
)";

int AccountsUsage(const std::string& problem) {
  fprintf(stderr, "keyward: %s\n%s", problem.c_str(), kAccountsUsage);
  return 2;
}

void PrintTokens(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : items) {
    std::string expires = Str(t, "expires_at");
    rows.push_back(
        {Str(t, "id"), Str(t, "kind"), Str(t, "created_at"), expires.empty() ? "never" : expires});
  }
  PrintTable({"ID", "KIND", "CREATED", "EXPIRES"}, rows);
}

void PrintMembers(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : items) rows.push_back({Str(m, "user_id"), Str(m, "name"), Str(m, "role")});
  PrintTable({"USER_ID", "NAME", "ROLE"}, rows);
}

}  // namespace

int RunAccountsCli(const std::string& noun, const std::vector<std::string>& args) {
  std::set<std::string> valued = kCommonValuedFlags;
  for (const char* f : {"ttl", "project", "role"}) valued.insert(f);
  auto flags = ParseFlags(args, valued, {"help", "revoke"});
  if (!flags.ok()) return AccountsUsage(std::string(flags.status().message()));
  if (flags->Has("help")) {
    printf("%s", kAccountsUsage);
    return 0;
  }
  if (flags->positional.empty()) return AccountsUsage("which command?");
  const std::string verb = noun + " " + flags->positional[0];
  std::vector<std::string> pos(flags->positional.begin() + 1, flags->positional.end());
  auto api = ApiClient::FromFlags(*flags);
  if (!api) return 2;
  auto project = flags->Get("project");
  std::optional<json> r;
  if (verb == "token list" && pos.empty()) {
    r = api->Call("GET", "/api/v1/tokens");
    if (!r) return 1;
    api->Print((*r)["items"], [&] { PrintTokens((*r)["items"]); });
    return 0;
  }
  if (verb == "token create" && pos.empty()) {
    auto ttl = flags->Get("ttl");
    if (!ttl) return AccountsUsage("token create needs --ttl SECONDS");
    json body = {{"ttl_seconds", std::atoll(ttl->c_str())}};
    r = api->Call("POST", "/api/v1/tokens", &body);
    if (!r) return 1;
    api->Print(*r, [&] {
      PrintTokens(json::array({*r}));
      printf("token: %s   (shown once; keep it)\n", Str(*r, "token").c_str());
    });
    return 0;
  }
  if (verb == "token revoke" && pos.size() == 1) {
    r = api->Call("DELETE", "/api/v1/tokens/" + pos[0]);
    if (!r) return 1;
    api->Print(*r, [&] { printf("token %s revoked\n", pos[0].c_str()); });
    return 0;
  }
  if (verb == "token rotate-owner" && pos.empty()) {
    r = api->Call("POST", "/api/v1/tokens/owner:rotate");
    if (!r) return 1;
    api->Print(*r, [&] {
      printf("owner token rotated; the old one no longer works\ntoken: %s\n",
             Str(*r, "token").c_str());
    });
    return 0;
  }
  if (noun == "member" && !project) return AccountsUsage(verb + " needs --project P");
  if (verb == "member list" && pos.empty()) {
    r = api->Call("GET", "/api/v1/projects/" + *project + "/members?page_size=500");
    if (!r) return 1;
    api->Print((*r)["items"], [&] { PrintMembers((*r)["items"]); });
    return 0;
  }
  if ((verb == "member set-role" || verb == "member remove") && pos.size() == 1) {
    std::string path = "/api/v1/projects/" + *project + "/members/" + pos[0];
    if (verb == "member remove") {
      r = api->Call("DELETE", path);
    } else {
      auto role = flags->Get("role");
      if (!role) return AccountsUsage("member set-role needs --role");
      json body = {{"role", *role}};
      r = api->Call("PATCH", path, &body);
    }
    if (!r) return 1;
    api->Print(*r, [&] { PrintMembers(json::array({*r})); });
    return 0;
  }
  if (verb == "user allow-project-create" && pos.size() == 1) {
    json body = {{"project_creator", !flags->Has("revoke")}};
    r = api->Call("PATCH", "/api/v1/users/" + pos[0], &body);
    if (!r) return 1;
    api->Print(*r,
               [&] { printf("%s: %s\n", Str(*r, "id").c_str(), Str(*r, "org_roles").c_str()); });
    return 0;
  }
  return AccountsUsage("unknown command or wrong number of arguments: " + verb);
}

}  // namespace keyward
