#include "api/rest_routes.h"

namespace keyward::rest {
namespace {

// The provider objects of a key request, field by field (errors name "azure.x" / "aws.x").
// A new key needs azure.key_name_prefix; an update changes only what it names.
absl::StatusOr<bool> CheckProviderFields(const KeyRequest& r, bool creating) {
  if (r.azure.is_object()) {
    auto a = ParseBody(r.azure.dump(),
                       {{"key_vault_name", {F::kString, false}},
                        {"managed_hsm_name", {F::kString, false}},
                        {"key_name_prefix", {F::kString, creating}},
                        {"subscription_id", {F::kString, false}},
                        {"resource_group", {F::kString, false}}},
                       "azure.");
    if (!a.ok()) return a.status();
  }
  if (r.aws.is_object()) {
    auto a = ParseBody(r.aws.dump(), {{"key_arn", {F::kString, true}}}, "aws.");
    if (!a.ok()) return a.status();
  }
  return true;
}

}  // namespace

void AddKeyRoutes(std::vector<Route>& t, const RouteDeps& d) {
  ControlPlane* cp = d.cp;
  MetadataStore* store = d.store;
  auto add = [&](std::string method, std::string path, Handler h) {
    AddRoute(t, std::move(method), std::move(path), std::move(h));
  };
  // What the Create Encryption Key wizard shows before a key record exists.
  add("GET", "/api/v1/key-management-services", [cp](Call& c) {
    c.Json(200, {{"items", cp->KeyManagementServices()}});
  });
  // Encryption keys.
  add("POST", "/api/v1/projects/{project_id}/encryption-keys", [cp, store](Call& c) {
    WithIdempotency(c, *store, [&] {
      auto body = ParseBody(c.body, {{"provider", {F::kString, true}},
                                     {"region", {F::kString, true}},
                                     {"azure", {F::kObject, false}},
                                     {"aws", {F::kObject, false}}});
      if (!c.Check(body)) return;
      KeyRequest r{(*body)["provider"], (*body)["region"], body->value("azure", json()),
                   body->value("aws", json())};
      if (!c.Check(CheckProviderFields(r, /*creating=*/true))) return;
      auto k = cp->CreateKey(c.user, c.params[0], r);
      if (!c.Check(k)) return;
      json out = KeyJson(*k);
      out["setup"] = cp->Instructions(*k);
      c.Json(201, out);
    });
  });
  add("GET", "/api/v1/projects/{project_id}/encryption-keys", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    c.List(cp->ListKeys(c.user, c.params[0], *page), *page, KeyJson);
  });
  add("GET", "/api/v1/projects/{project_id}/encryption-keys/{key_id}", [cp](Call& c) {
    auto k = cp->GetKey(c.user, c.params[0], c.params[1]);
    if (!c.Check(k)) return;
    json out = KeyJson(*k);
    out["setup"] = cp->Instructions(*k);
    c.Json(200, out);
  });
  add("PATCH", "/api/v1/projects/{project_id}/encryption-keys/{key_id}", [cp](Call& c) {
    auto body = ParseBody(c.body, {{"provider", {F::kString, false}},
                                   {"region", {F::kString, false}},
                                   {"azure", {F::kObject, false}},
                                   {"aws", {F::kObject, false}}});
    if (!c.Check(body)) return;
    KeyRequest r{Opt<std::string>(*body, "provider", ""), Opt<std::string>(*body, "region", ""),
                 body->value("azure", json()), body->value("aws", json())};
    if (!c.Check(CheckProviderFields(r, /*creating=*/false))) return;
    auto k = cp->UpdateKey(c.user, c.params[0], c.params[1], r);
    if (!c.Check(k)) return;
    json out = KeyJson(*k);
    out["setup"] = cp->Instructions(*k);
    c.Json(200, out);
  });
  add("DELETE", "/api/v1/projects/{project_id}/encryption-keys/{key_id}", [cp](Call& c) {
    auto k = cp->DeleteKey(c.user, c.params[0], c.params[1]);
    if (c.Check(k)) c.Json(200, KeyJson(*k));
  });
  add("POST", "/api/v1/projects/{project_id}/encryption-keys/{key_id}:test", [cp](Call& c) {
    auto t = cp->TestKey(c.user, c.params[0], c.params[1]);
    if (!c.Check(t)) return;
    json out = KeyJson(t->key);
    out["checks"] = ChecksJson(t->checks);
    c.Json(200, out);
  });
}

}  // namespace keyward::rest
