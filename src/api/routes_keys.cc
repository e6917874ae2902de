#include "absl/strings/str_cat.h"
#include "api/rest_routes.h"
#include "kms/provider_registry.h"

namespace keyward::rest {
namespace {

// Fields a key request may carry its provider settings in: provider_config, and each
// provider's older alias (the registry's legacy_field: "azure", "aws").
std::vector<std::string> ConfigFields() {
  std::vector<std::string> out = {"provider_config"};
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    if (!m->legacy_field().empty()) out.push_back(m->legacy_field());
  }
  return out;
}

// A key request's body: provider and region (required when `creating`) and the provider's
// settings, given once, in provider_config or an alias.
absl::StatusOr<KeyRequest> ParseKeyRequest(const std::string& text, bool creating) {
  std::map<std::string, FieldSpec> spec = {{"provider", {F::kString, creating}},
                                           {"region", {F::kString, creating}}};
  std::vector<std::string> config_fields = ConfigFields();
  for (const std::string& f : config_fields) spec[f] = {F::kObject, false};
  auto body = ParseBody(text, spec);
  if (!body.ok()) return body.status();
  KeyRequest r{Opt<std::string>(*body, "provider", ""), Opt<std::string>(*body, "region", ""),
               nullptr};
  for (const std::string& f : config_fields) {
    if (!body->contains(f)) continue;
    if (!r.provider_config.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat("give the provider's settings once: field '",
                                                     f, "' and field '", r.config_field,
                                                     "' were both given (use provider_config)"));
    }
    r.provider_config = (*body)[f];
    r.config_field = f;
  }
  return r;
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
  // The KMS providers customers can keep keys in, with their provider_config fields and regions.
  add("GET", "/api/v1/kms-providers", [cp](Call& c) {
    c.Json(200, {{"items", cp->KmsProviders()}});
  });
  // Encryption keys.
  add("POST", "/api/v1/projects/{project_id}/encryption-keys", [cp, store](Call& c) {
    WithIdempotency(c, *store, [&] {
      auto r = ParseKeyRequest(c.body, /*creating=*/true);
      if (!c.Check(r)) return;
      auto k = cp->CreateKey(c.user, c.params[0], *r);
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
    auto r = ParseKeyRequest(c.body, /*creating=*/false);
    if (!c.Check(r)) return;
    auto k = cp->UpdateKey(c.user, c.params[0], c.params[1], *r);
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
