#include "api/rest_routes.h"

namespace keyward::rest {

void AddProjectRoutes(std::vector<Route>& t, const RouteDeps& d) {
  ControlPlane* cp = d.cp;
  MetadataStore* store = d.store;
  auto add = [&](std::string method, std::string path, Handler h) {
    AddRoute(t, std::move(method), std::move(path), std::move(h));
  };
  // Projects.
  add("POST", "/api/v1/projects", [cp, store](Call& c) {
    WithIdempotency(c, *store, [&] {
      auto body =
          ParseBody(c.body, {{"name", {F::kString, true}}, {"cmek_enabled", {F::kBool, false}}});
      if (!c.Check(body)) return;
      auto p = cp->CreateProject(c.user, (*body)["name"], Opt(*body, "cmek_enabled", false));
      if (c.Check(p)) c.Json(201, ProjectJson(*p));
    });
  });
  add("GET", "/api/v1/projects", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    c.List(cp->ListProjects(c.user, *page), *page, ProjectJson);
  });
  add("GET", "/api/v1/projects/{project_id}", [cp](Call& c) {
    auto p = cp->GetProject(c.user, c.params[0]);
    if (c.Check(p)) c.Json(200, ProjectJson(*p));
  });
  add("PATCH", "/api/v1/projects/{project_id}", [cp](Call& c) {
    auto body =
        ParseBody(c.body, {{"name", {F::kString, false}}, {"cmek_enabled", {F::kBool, false}}});
    if (!c.Check(body)) return;
    // The rules (CMEK fixed at creation, who may rename) are the control plane's.
    ControlPlane::ProjectChange change;
    if (body->contains("name")) change.name = (*body)["name"].get<std::string>();
    if (body->contains("cmek_enabled")) change.cmek_enabled = (*body)["cmek_enabled"].get<bool>();
    auto p = cp->UpdateProject(c.user, c.params[0], change);
    if (c.Check(p)) c.Json(200, ProjectJson(*p));
  });
  add("POST", "/api/v1/projects/{project_id}/members", [cp, store](Call& c) {
    WithIdempotency(c, *store, [&] {
      auto body = ParseBody(c.body, {{"name", {F::kString, true}},
                                     {"role", {F::kString, true}},
                                     {"token_ttl_seconds", {F::kInt, false}}});
      if (!c.Check(body)) return;
      auto m = cp->AddMember(c.user, c.params[0], (*body)["name"], (*body)["role"],
                             Opt<int64_t>(*body, "token_ttl_seconds", 0));
      if (c.Check(m)) {
        c.Json(201, {{"user_id", m->first.id},
                     {"name", m->first.name},
                     {"role", (*body)["role"]},
                     {"token", m->second}});
      }
    });
  });
  add("GET", "/api/v1/projects/{project_id}/members", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    c.List(cp->ListMembers(c.user, c.params[0], *page), *page, MemberJson);
  });
  add("PATCH", "/api/v1/projects/{project_id}/members/{user_id}", [cp](Call& c) {
    auto body = ParseBody(c.body, {{"role", {F::kString, true}}});
    if (!c.Check(body)) return;
    auto m = cp->ChangeMemberRole(c.user, c.params[0], c.params[1], (*body)["role"]);
    if (c.Check(m)) c.Json(200, MemberJson(*m));
  });
  add("DELETE", "/api/v1/projects/{project_id}/members/{user_id}", [cp](Call& c) {
    auto m = cp->RemoveMember(c.user, c.params[0], c.params[1]);
    if (c.Check(m)) c.Json(200, MemberJson(*m));
  });
  // Who the token belongs to: the console shows only what this user may do.
  add("GET", "/api/v1/users/me", [](Call& c) {
    json out = UserJson(c.user);
    out["org_id"] = c.user.org_id;
    c.Json(200, out);
  });
  add("PATCH", "/api/v1/users/{user_id}", [cp](Call& c) {
    auto body = ParseBody(c.body, {{"project_creator", {F::kBool, true}}});
    if (!c.Check(body)) return;
    auto u = cp->SetProjectCreator(c.user, c.params[0], (*body)["project_creator"].get<bool>());
    if (c.Check(u)) c.Json(200, UserJson(*u));
  });

  // Tokens: the caller's own.
  add("GET", "/api/v1/tokens", [cp](Call& c) {
    auto tokens = cp->ListTokens(c.user);
    if (!c.Check(tokens)) return;
    json items = json::array();
    for (const auto& t : *tokens) items.push_back(TokenJson(t));
    c.Json(200, {{"items", items}});
  });
  add("POST", "/api/v1/tokens", [cp, store](Call& c) {
    WithIdempotency(c, *store, [&] {
      auto body = ParseBody(c.body, {{"ttl_seconds", {F::kInt, true}}});
      if (!c.Check(body)) return;
      auto t = cp->CreateToken(c.user, (*body)["ttl_seconds"].get<int64_t>());
      if (!c.Check(t)) return;
      json out = TokenJson(t->first);
      out["token"] = t->second;
      c.Json(201, out);
    });
  });
  add("DELETE", "/api/v1/tokens/{token_id}", [cp](Call& c) {
    auto t = cp->RevokeToken(c.user, c.params[0]);
    if (c.Check(t)) c.Json(200, TokenJson(*t));
  });
  add("POST", "/api/v1/tokens/owner:rotate", [cp](Call& c) {
    auto t = cp->RotateOwnerToken(c.user);
    if (c.Check(t)) c.Json(200, {{"token", *t}});
  });
}

}  // namespace keyward::rest
