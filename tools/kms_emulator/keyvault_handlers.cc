// Routing, and the Azure Key Vault data plane (api-version 7.4 shapes): keys, versions,
// attributes, rotation and its policy, soft delete, wrapKey/unwrapKey — each call authenticated
// by an emulated Entra token and authorised by RBAC role assignments.

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/random.h"
#include "emulator_impl.h"
#include "rsa_keys.h"
#include "util/base64.h"

namespace keyward::emulator {
namespace {

std::string HostOnly(const std::string& host_header) {
  std::string h = Lower(host_header);
  auto colon = h.rfind(':');
  return colon == std::string::npos ? h : h.substr(0, colon);
}

std::string RecoveryLevel(const json& vault) {
  if (vault.value("purge_protection", false)) return "Recoverable";
  if (vault.value("soft_delete", true)) return "Recoverable+Purgeable";
  return "Purgeable";
}

}  // namespace

void EmulatorImpl::Routes() {
  auto dispatch = [this](const httplib::Request& req, httplib::Response& res) {
    static const std::regex kOpenId("^/([^/]+)/v2\\.0/\\.well-known/openid-configuration$");
    static const std::regex kToken("^/([^/]+)/oauth2/v2\\.0/token$");
    std::smatch m;
    std::string host = HostOnly(req.get_header_value("Host"));
    if (absl::StartsWith(req.path, "/admin/")) return Admin(req, res);
    if (req.has_header("X-Amz-Target")) return AwsKms(req, res);
    if (req.method == "POST" && req.path == "/" && req.has_param("Action")) return AwsSts(req, res);
    if (req.path == "/metadata/identity/oauth2/token") return Imds(req, res);
    if (std::regex_match(req.path, m, kOpenId)) {
      std::string base = "https://" + req.get_header_value("Host") + "/" + m[1].str();
      res.set_content(json{{"authorization_endpoint", base + "/oauth2/v2.0/authorize"},
                           {"token_endpoint", base + "/oauth2/v2.0/token"},
                           {"issuer", base + "/v2.0"},
                           {"jwks_uri", base + "/discovery/v2.0/keys"},
                           {"response_types_supported", json::array({"code", "id_token", "token"})},
                           {"token_endpoint_auth_methods_supported",
                            json::array({"client_secret_post", "private_key_jwt"})}}
                          .dump(),
                      "application/json");
      return;
    }
    if (req.method == "POST" && std::regex_match(req.path, m, kToken))
      return Token(req, res, m[1].str());
    if (absl::StartsWith(req.path, "/subscriptions/")) return Arm(req, res);
    if (absl::EndsWith(host, ".managedhsm.azure.net")) {
      std::string hsm = host.substr(0, host.size() - std::string(".managedhsm.azure.net").size());
      if (absl::StrContains(req.path, "/providers/Microsoft.Authorization/roleAssignments/")) {
        return HsmRoleAssignment(req, res, hsm);
      }
      return KeyVault(req, res, "hsm:" + hsm);
    }
    if (absl::EndsWith(host, ".vault.azure.net")) {
      return KeyVault(req, res,
                      host.substr(0, host.size() - std::string(".vault.azure.net").size()));
    }
    KvError(res, 404, "NotFound", "no emulated service answers " + host + req.path);
  };
  server_->Get(".*", dispatch);
  server_->Post(".*", dispatch);
  server_->Put(".*", dispatch);
  server_->Patch(".*", dispatch);
  server_->Delete(".*", dispatch);
}

void EmulatorImpl::KeyVault(const httplib::Request& req, httplib::Response& res,
                            const std::string& vault) {
  std::vector<std::string> seg = absl::StrSplit(req.path, '/');  // keeps empty segments
  if (seg.size() < 3 || !seg[0].empty())
    return KvError(res, 404, "NotFound", "unknown path " + req.path);
  std::string collection = Lower(seg[1]);
  std::string name = seg[2];
  std::string tail = seg.size() > 3 ? Lower(seg[3]) : "";
  std::string last = Lower(seg.back());
  std::string op;
  if (collection == "keys") {
    if (req.method == "POST" && tail == "create")
      op = "createkey";
    else if (req.method == "POST" && tail == "rotate")
      op = "rotatekey";
    else if (tail == "rotationpolicy")
      op = req.method == "GET" ? "getrotationpolicy" : "setrotationpolicy";
    else if (req.method == "GET" && tail == "versions")
      op = "listversions";
    else if (req.method == "POST" && seg.size() == 5 && (last == "wrapkey" || last == "unwrapkey"))
      op = last;
    else if (req.method == "GET" && seg.size() <= 4)
      op = "getkey";
    else if (req.method == "PATCH" && seg.size() <= 4)
      op = "updatekey";
    else if (req.method == "DELETE" && seg.size() == 3)
      op = "deletekey";
  } else if (collection == "deletedkeys") {
    if (req.method == "GET" && seg.size() == 3)
      op = "getdeletedkey";
    else if (req.method == "DELETE" && seg.size() == 3)
      op = "purgedeletedkey";
    else if (req.method == "POST" && tail == "recover")
      op = "recoverdeletedkey";
  }
  if (op.empty())
    return KvError(res, 400, "BadParameter",
                   "unsupported operation " + req.method + " " + req.path);
  if (!req.has_param("api-version")) {
    return KvError(res, 400, "BadParameter", "The 'api-version' query parameter is missing.");
  }
  if (Fault(op, res)) return;
  std::lock_guard<std::mutex> lock(mu_);
  // Per key too ("getkey:vault/name"), so a test can count one key's calls among many keys.
  const std::string per_key = op + ":" + vault + "/" + name;
  counters_[per_key] = counters_.value(per_key, 0) + 1;
  const bool hsm = absl::StartsWith(vault, "hsm:");
  auto claims = Authenticate(req, res, hsm ? kHsmAudience : kVaultAudience);
  if (!claims) return;
  if (!state_["vaults"].contains(vault)) {
    return KvError(res, 404, "VaultNotFound",
                   "Vault " + vault + " does not exist; create it through ARM first.");
  }
  json& v = state_["vaults"][vault];
  static const std::map<std::string, std::string> kAction = {
      {"createkey", "keys/create/action"},
      {"rotatekey", "keys/rotate/action"},
      {"getrotationpolicy", "keyrotationpolicies/read"},
      {"setrotationpolicy", "keyrotationpolicies/write"},
      {"listversions", "keys/read"},
      {"getkey", "keys/read"},
      {"updatekey", "keys/update/action"},
      {"wrapkey", "keys/wrap/action"},
      {"unwrapkey", "keys/unwrap/action"},
      {"deletekey", "keys/delete"},
      {"getdeletedkey", "deletedKeys/read"},
      {"purgedeletedkey", "deletedKeys/delete"},
      {"recoverdeletedkey", "deletedKeys/recover/action"}};
  std::string action = "Microsoft.KeyVault/vaults/" + kAction.at(op);
  std::string scope = hsm ? vault + "/keys/" + name : VaultScope(vault) + "/keys/" + name;
  if (hsm) {  // Managed HSM data actions: managedHsm/keys/…/action
    action = "Microsoft.KeyVault/managedHsm/" + kAction.at(op);
    if (!absl::EndsWith(action, "/action")) action += "/action";
  }
  std::string oid = (*claims).value("oid", "");
  if (!Allowed(oid, scope, action)) {
    return KvError(
        res, 403, "Forbidden",
        absl::StrCat("Caller is not authorized to perform action on resource.\r\nCaller: appid=",
                     (*claims).value("appid", ""), ";oid=", oid, "\r\nAction: '", action,
                     "'\r\nResource: '", Lower(scope), "'\r\nAssignment: (not found)"),
        "ForbiddenByRbac");
  }
  std::string base = "https://" + req.get_header_value("Host");
  json& keys = state_["keys"][vault];
  auto bundle = [&](const json& ver, const std::string& key_name) {
    json jwk = {{"kid", base + "/keys/" + key_name + "/" + ver["version"].get<std::string>()},
                {"kty", ver["kty"]},
                {"key_ops", ver["key_ops"]}};
    if (ver.contains("pem")) {
      std::string n, e;
      RsaPublicJwk(ver["pem"], &n, &e).IgnoreError();
      jwk["n"] = n;
      jwk["e"] = e;
    }
    return json{{"key", jwk},
                {"attributes",
                 {{"enabled", ver["enabled"]},
                  {"created", ver["created"]},
                  {"updated", ver["updated"]},
                  {"recoveryLevel", RecoveryLevel(v)},
                  {"recoverableDays", 90}}},
                {"tags", ver.value("tags", json::object())}};
  };
  auto new_version = [&](const std::string& kty, int size, const json& ops,
                         bool enabled) -> absl::StatusOr<json> {
    json ver = {{"version", RandomHex(16).value_or("")},
                {"kty", kty},
                {"key_size", size},
                {"key_ops", ops},
                {"enabled", enabled},
                {"created", Now()},
                {"updated", Now()}};
    if (kty == "oct-HSM") {  // symmetric key material, only ever inside the (emulated) HSM
      auto secret = RandomHex(size / 8);
      if (!secret.ok()) return secret.status();
      ver["secret"] = *secret;
      return ver;
    }
    auto pem = GenerateRsaPem(size);
    if (!pem.ok()) return pem.status();
    ver["pem"] = *pem;
    return ver;
  };
  auto reply = [&](const json& body) {
    res.status = 200;
    res.set_content(body.dump(), "application/json");
    Save();
  };

  if (op == "createkey") {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object())
      return KvError(res, 400, "BadParameter", "The request body is not valid JSON.");
    std::string kty = body.value("kty", "");
    bool rsa = kty == "RSA-HSM" || (kty == "RSA" && !hsm);
    if (!rsa && !(kty == "oct-HSM" && hsm)) {
      return KvError(res, 400, "BadParameter",
                     "Key type '" + kty + "' is not supported by this " +
                         (hsm ? "Managed HSM (use oct-HSM or RSA-HSM)."
                              : "vault (oct-HSM keys live in a Managed HSM)."));
    }
    int size = body.value("key_size", rsa ? 2048 : 256);
    if (rsa ? (size != 2048 && size != 3072 && size != 4096) : size != 256)
      return KvError(res, 400, "BadParameter", "Invalid key size.");
    json ops = body.value(
        "key_ops", json::array({"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}));
    bool enabled = body.value("attributes", json::object()).value("enabled", true);
    if (keys.contains(name) && keys[name].value("deleted", false)) {
      return KvError(res, 409, "Conflict",
                     "Key " + name + " is currently in a deleted but recoverable state.");
    }
    auto ver = new_version(kty, size, ops, enabled);
    if (!ver.ok())
      return KvError(res, 500, "InternalServerError", std::string(ver.status().message()));
    if (body.contains("tags")) (*ver)["tags"] = body["tags"];
    keys[name]["versions"].push_back(*ver);
    return reply(bundle(*ver, name));
  }
  if (!keys.contains(name) || (keys[name].value("deleted", false) && collection == "keys")) {
    if (collection == "keys" || !keys.contains(name)) {
      return KvError(res, 404, "KeyNotFound",
                     "A key with (name/id) " + name + " was not found in this key vault.");
    }
  }
  json& entry = keys[name];
  json& versions = entry["versions"];
  auto find_version = [&](const std::string& version) -> json* {
    if (version.empty()) return &versions.back();
    for (auto& ver : versions) {
      if (ver["version"] == version) return &ver;
    }
    return nullptr;
  };
  std::string version = seg.size() >= 4 && op != "rotatekey" && op != "listversions" ? seg[3] : "";
  if (op == "getdeletedkey" || op == "recoverdeletedkey" || op == "purgedeletedkey") {
    if (!entry.value("deleted", false))
      return KvError(res, 404, "KeyNotFound", "Deleted key " + name + " was not found.");
    if (op == "purgedeletedkey") {
      if (v.value("purge_protection", false)) {
        return KvError(
            res, 403, "Forbidden",
            "Operation 'purge' is not allowed because purge protection is enabled for this vault.");
      }
      keys.erase(name);
      res.status = 204;
      Save();
      return;
    }
    if (op == "recoverdeletedkey") entry["deleted"] = false;
    json b = bundle(versions.back(), name);
    if (op == "getdeletedkey") b["recoveryId"] = base + "/deletedkeys/" + name;
    return reply(b);
  }
  if (op == "deletekey") {
    json b = bundle(versions.back(), name);
    if (v.value("soft_delete", true)) {
      entry["deleted"] = true;
      b["recoveryId"] = base + "/deletedkeys/" + name;
      b["deletedDate"] = Now();
      b["scheduledPurgeDate"] = Now() + 90 * 86400;
    } else {
      keys.erase(name);
    }
    return reply(b);
  }
  if (op == "getkey") {
    json* ver = find_version(version);
    if (!ver) return KvError(res, 404, "KeyNotFound", "Key version " + version + " was not found.");
    return reply(bundle(*ver, name));
  }
  if (op == "listversions") {
    json out = json::array();
    for (const auto& ver : versions) {
      json b = bundle(ver, name);
      out.push_back({{"kid", b["key"]["kid"]}, {"attributes", b["attributes"]}});
    }
    return reply({{"value", out}, {"nextLink", nullptr}});
  }
  if (op == "updatekey") {
    json* ver = find_version(version);
    if (!ver) return KvError(res, 404, "KeyNotFound", "Key version " + version + " was not found.");
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object())
      return KvError(res, 400, "BadParameter", "The request body is not valid JSON.");
    if (body.contains("attributes") && body["attributes"].contains("enabled")) {
      (*ver)["enabled"] = body["attributes"]["enabled"].get<bool>();
    }
    if (body.contains("key_ops")) (*ver)["key_ops"] = body["key_ops"];
    if (body.contains("tags")) (*ver)["tags"] = body["tags"];
    (*ver)["updated"] = Now();
    return reply(bundle(*ver, name));
  }
  if (op == "rotatekey") {
    const json& cur = versions.back();
    auto ver = new_version(cur["kty"], cur["key_size"], cur["key_ops"], true);
    if (!ver.ok())
      return KvError(res, 500, "InternalServerError", std::string(ver.status().message()));
    versions.push_back(*ver);
    return reply(bundle(*ver, name));
  }
  if (op == "getrotationpolicy" || op == "setrotationpolicy") {
    json policy = entry.value("rotation_policy", json(nullptr));
    if (op == "setrotationpolicy") {
      json body = json::parse(req.body, nullptr, false);
      if (!body.is_object() ||
          (body.contains("lifetimeActions") && !body["lifetimeActions"].is_array())) {
        return KvError(res, 400, "BadParameter", "The rotation policy is not valid.");
      }
      for (const auto& a : body.value("lifetimeActions", json::array())) {
        std::string type = Lower(a.value("action", json::object()).value("type", ""));
        if (type != "rotate" && type != "notify")
          return KvError(res, 400, "BadParameter", "Unknown lifetime action type.");
      }
      policy = {{"lifetimeActions", body.value("lifetimeActions", json::array())},
                {"attributes",
                 {{"expiryTime",
                   body.value("attributes", json::object()).value("expiryTime", json(nullptr))},
                  {"created", Now()},
                  {"updated", Now()}}}};
      entry["rotation_policy"] = policy;
    }
    if (policy.is_null()) {  // the service's default, not a 404
      policy = {
          {"lifetimeActions", json::array({{{"trigger", {{"timeBeforeExpiry", "P30D"}}},
                                            {"action", {{"type", "Notify"}}}}})},
          {"attributes", {{"expiryTime", nullptr}, {"created", nullptr}, {"updated", nullptr}}}};
    }
    policy["id"] = base + "/keys/" + name + "/rotationpolicy";
    return reply(policy);
  }
  // wrapkey / unwrapkey
  json* ver = find_version(version);
  if (!ver) return KvError(res, 404, "KeyNotFound", "Key version " + version + " was not found.");
  bool wrap = op == "wrapkey";
  if (!(*ver)["enabled"].get<bool>()) {
    return KvError(res, 403, "Forbidden",
                   std::string("Operation ") + (wrap ? "wrapKey" : "unwrapKey") +
                       " is not allowed on a disabled key.",
                   "KeyDisabled");
  }
  std::string needed = wrap ? "wrapKey" : "unwrapKey";
  bool permitted = false;
  for (const auto& o : (*ver)["key_ops"]) permitted |= o == needed;
  if (!permitted)
    return KvError(res, 403, "Forbidden", "Operation " + needed + " is not permitted on this key.",
                   "KeyOperationForbidden");
  json body = json::parse(req.body, nullptr, false);
  std::string alg = body.is_object() ? body.value("alg", "") : "";
  const bool oct = ver->contains("secret");
  if (oct ? alg != "A256KW" : (alg != "RSA-OAEP" && alg != "RSA-OAEP-256")) {
    return KvError(res, 400, "BadParameter",
                   "Algorithm '" + alg + "' is not supported for this key; use " +
                       (oct ? "A256KW." : "RSA-OAEP-256 or RSA-OAEP."));
  }
  auto value = Base64Decode(body.value("value", ""));
  if (!value.ok()) return KvError(res, 400, "BadParameter", "value is not base64url.");
  auto out =
      oct ? AesKeyWrap((*ver)["secret"], *value, wrap) : RsaOaep((*ver)["pem"], alg, *value, wrap);
  if (!out.ok()) return KvError(res, 400, "BadParameter", std::string(out.status().message()));
  res.set_content(json{{"kid", base + "/keys/" + name + "/" + (*ver)["version"].get<std::string>()},
                       {"value", Base64UrlEncode(*out)}}
                      .dump(),
                  "application/json");
}

}  // namespace keyward::emulator

namespace keyward::emulator {

void EmulatorImpl::HsmRoleAssignment(const httplib::Request& req, httplib::Response& res,
                                     const std::string& hsm) {
  static const std::regex kPath(
      "^(/.*?)/?providers/Microsoft\\.Authorization/roleAssignments/([^/]+)$", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(req.path, m, kPath) || req.method != "PUT") {
    return KvError(res, 400, "BadParameter",
                   "use PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{id}");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto claims = Authenticate(req, res, kHsmAudience);
  if (!claims) return;
  std::string key = "hsm:" + hsm;
  if (!state_["vaults"].contains(key))
    return KvError(res, 404, "NotFound", "Managed HSM " + hsm + " does not exist.");
  bool admin = false;
  for (const auto& oid : state_["vaults"][key].value("initial_admins", json::array()))
    admin |= oid == (*claims).value("oid", "");
  if (!admin) {
    return KvError(res, 403, "Forbidden", "Only a Managed HSM Administrator can assign roles.",
                   "ForbiddenByRbac");
  }
  json props = json::parse(req.body, nullptr, false).value("properties", json::object());
  std::string role = props.value("roleDefinitionId", "");
  if (!absl::EndsWith(role, kHsmCryptoUser) &&
      !absl::EndsWith(role, kHsmCryptoServiceEncryptionUser)) {
    return KvError(res, 400, "BadParameter",
                   "The emulator knows Managed HSM Crypto User and Managed HSM Crypto Service "
                   "Encryption User.");
  }
  std::string scope = m[1].str();
  while (scope.size() > 1 && scope.back() == '/') scope.pop_back();
  state_["role_assignments"][m[2].str()] = {{"scope", key + (scope == "/" ? "" : scope)},
                                            {"roleDefinitionId", role},
                                            {"principalId", props.value("principalId", "")}};
  Save();
  res.status = 201;
  res.set_content(json{{"id", req.path},
                       {"name", m[2].str()},
                       {"properties",
                        {{"scope", scope},
                         {"roleDefinitionId", role},
                         {"principalId", props.value("principalId", "")}}}}
                      .dump(),
                  "application/json");
}

}  // namespace keyward::emulator
