// ARM (management.azure.com) paths for Key Vaults and role assignments, and the emulator's own
// admin API for what Azure has no API for: principals, injected faults, call counters.

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "emulator_impl.h"
#include "jwt.h"
#include "rsa_keys.h"

namespace keyward::emulator {
namespace {

void ArmError(httplib::Response& res, int status, const std::string& code,
              const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(),
                  "application/json");
}

}  // namespace

void EmulatorImpl::Arm(const httplib::Request& req, httplib::Response& res) {
  static const std::regex kVault(
      "^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\\.KeyVault/vaults/([^/"
      "]+)$",
      std::regex::icase);
  static const std::regex kHsm(
      "^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\\.KeyVault/managedHSMs/"
      "([^/]+)$",
      std::regex::icase);
  static const std::regex kAssignment(
      "^(/.+)/providers/Microsoft\\.Authorization/roleAssignments/([^/]+)$", std::regex::icase);
  if (Fault("arm", res)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!Authenticate(req, res, kArmAudience)) return;
  std::smatch m;
  if (std::regex_match(req.path, m, kVault)) {
    std::string sub = m[1], rg = m[2], name = Lower(m[3]);
    json& vaults = state_["vaults"];
    auto view = [&](const json& v) {
      return json{{"id", req.path},
                  {"name", name},
                  {"type", "Microsoft.KeyVault/vaults"},
                  {"location", v["location"]},
                  {"properties",
                   {{"tenantId", Tenant()},
                    {"sku", {{"family", "A"}, {"name", v.value("sku", "standard")}}},
                    {"enableSoftDelete", v["soft_delete"]},
                    {"enablePurgeProtection", v["purge_protection"]},
                    {"enableRbacAuthorization", true},
                    {"vaultUri", "https://" + name + ".vault.azure.net/"}}}};
    };
    if (req.method == "GET") {
      if (!vaults.contains(name))
        return ArmError(res, 404, "ResourceNotFound",
                        "The Resource 'Microsoft.KeyVault/vaults/" + name + "' was not found.");
      res.set_content(view(vaults[name]).dump(), "application/json");
      return;
    }
    if (req.method != "PUT") return ArmError(res, 405, "MethodNotAllowed", "use GET or PUT");
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("location"))
      return ArmError(res, 400, "BadRequest", "location is required");
    json props = body.value("properties", json::object());
    bool purge = props.value("enablePurgeProtection", false);
    if (vaults.contains(name) && vaults[name]["purge_protection"].get<bool>() && !purge) {
      return ArmError(res, 400, "BadRequest",
                      "The property \"enablePurgeProtection\" cannot be set to false. Enabling "
                      "purge protection is irreversible.");
    }
    vaults[name] = {{"location", Lower(body["location"])},
                    {"subscription", sub},
                    {"resource_group", rg},
                    {"soft_delete", props.value("enableSoftDelete", true)},
                    {"purge_protection", purge},
                    {"sku", props.value("sku", json::object()).value("name", "standard")}};
    Save();
    res.set_content(view(vaults[name]).dump(), "application/json");
    return;
  }
  if (std::regex_match(req.path, m, kHsm)) {
    std::string key = "hsm:" + Lower(m[3]);
    json& vaults = state_["vaults"];
    if (req.method == "PUT") {
      json body = json::parse(req.body, nullptr, false);
      if (!body.is_object() || !body.contains("location"))
        return ArmError(res, 400, "BadRequest", "location is required");
      json props = body.value("properties", json::object());
      vaults[key] = {{"location", Lower(body["location"])},
                     {"subscription", m[1].str()},
                     {"resource_group", m[2].str()},
                     {"soft_delete", true},
                     {"purge_protection", props.value("enablePurgeProtection", false)},
                     {"initial_admins", props.value("initialAdminObjectIds", json::array())}};
      Save();
    } else if (!vaults.contains(key)) {
      return ArmError(res, 404, "ResourceNotFound", "Managed HSM not found");
    }
    const json& v = vaults[key];
    res.set_content(json{{"id", req.path},
                         {"name", Lower(m[3])},
                         {"type", "Microsoft.KeyVault/managedHSMs"},
                         {"location", v["location"]},
                         {"properties",
                          {{"tenantId", Tenant()},
                           {"enablePurgeProtection", v["purge_protection"]},
                           {"enableSoftDelete", true},
                           {"initialAdminObjectIds", v["initial_admins"]},
                           {"hsmUri", "https://" + Lower(m[3]) + ".managedhsm.azure.net/"}}}}
                        .dump(),
                    "application/json");
    return;
  }
  if (std::regex_match(req.path, m, kAssignment)) {
    std::string scope = m[1], id = m[2];
    json& all = state_["role_assignments"];
    if (req.method == "DELETE") {
      all.erase(id);
      Save();
      res.set_content("{}", "application/json");
      return;
    }
    if (req.method == "GET") {
      if (!all.contains(id))
        return ArmError(res, 404, "RoleAssignmentNotFound", "no such role assignment");
      res.set_content(all[id].dump(), "application/json");
      return;
    }
    json props = json::parse(req.body, nullptr, false).value("properties", json::object());
    std::string role = props.value("roleDefinitionId", "");
    std::string principal = props.value("principalId", "");
    if (!absl::EndsWith(role, kCryptoOfficer) &&
        !absl::EndsWith(role, kCryptoServiceEncryptionUser)) {
      return ArmError(res, 400, "RoleDefinitionDoesNotExist",
                      "The emulator knows the Key Vault Crypto Officer and Key Vault Crypto "
                      "Service Encryption User roles.");
    }
    if (principal.empty())
      return ArmError(res, 400, "InvalidPrincipalId", "principalId is required");
    all[id] = {
        {"id", req.path}, {"scope", scope}, {"roleDefinitionId", role}, {"principalId", principal}};
    Save();
    res.status = 201;
    res.set_content(json{{"id", req.path}, {"name", id}, {"properties", all[id]}}.dump(),
                    "application/json");
    return;
  }
  ArmError(res, 404, "NotFound", "the emulator serves vaults and role assignments only");
}

void EmulatorImpl::Admin(const httplib::Request& req, httplib::Response& res) {
  std::lock_guard<std::mutex> lock(mu_);
  json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
  if (!body.is_object()) return ArmError(res, 400, "BadRequest", "body must be a JSON object");
  if (absl::StartsWith(req.path, "/admin/aws/")) return AwsAdmin(req, res, body);
  if (req.path == "/admin/principals" && req.method == "POST") {
    std::string client_id = Uuid();
    json p = {{"tenant_id", Tenant()},
              {"client_id", client_id},
              {"object_id", Uuid()},
              {"client_secret", RandomHex(20).value_or("")},
              {"display_name", body.value("display_name", "principal")},
              {"managed_identity", body.value("managed_identity", false)}};
    if (body.contains("certificate_pem")) p["certificate_pem"] = body["certificate_pem"];
    if (body.contains("federated_subject")) p["federated_subject"] = body["federated_subject"];
    state_["principals"][client_id] = p;
    Save();
    res.status = 201;
    res.set_content(p.dump(), "application/json");
    return;
  }
  // What a Kubernetes service-account token issuer would project into a pod (workload identity).
  if (req.path == "/admin/federated-tokens" && req.method == "POST") {
    json claims = {{"iss", "https://" + req.get_header_value("Host") + "/oidc"},
                   {"sub", body.value("subject", "")},
                   {"aud", body.value("audience", "api://AzureADTokenExchange")},
                   {"iat", Now()},
                   {"exp", Now() + 3600}};
    res.set_content(json{{"token", SignJwt(claims, Secret())}}.dump(), "application/json");
    return;
  }
  // Azure applies rotation policies on its own clock; the emulator applies them when asked,
  // as if `advance_days` had passed: every key whose policy has a Rotate action with
  // timeAfterCreate PnD, n <= age + advance_days, gets a new version.
  if (req.path == "/admin/rotation-policies:run" && req.method == "POST") {
    int advance = body.value("advance_days", 0);
    json rotated = json::array();
    for (auto& [vault, keys] : state_["keys"].items()) {
      for (auto& [name, entry] : keys.items()) {
        if (!entry.contains("rotation_policy") || entry["rotation_policy"].is_null() ||
            entry.value("deleted", false)) {
          continue;
        }
        const json& current = entry["versions"].back();
        int64_t age_days = (Now() - current["created"].get<int64_t>()) / 86400 + advance;
        bool due = false;
        for (const auto& a : entry["rotation_policy"].value("lifetimeActions", json::array())) {
          std::string type = Lower(a.value("action", json::object()).value("type", ""));
          std::string after = a.value("trigger", json::object()).value("timeAfterCreate", "");
          int days = 0;
          if (type == "rotate" && after.size() > 2 && after[0] == 'P' && after.back() == 'D' &&
              absl::SimpleAtoi(after.substr(1, after.size() - 2), &days)) {
            due |= age_days >= days;
          }
        }
        if (!due) continue;
        json next = current;
        next["version"] = RandomHex(16).value_or("");
        next["created"] = next["updated"] = Now();
        if (next.contains("pem")) next["pem"] = GenerateRsaPem(next["key_size"]).value_or("");
        if (next.contains("secret")) next["secret"] = RandomHex(32).value_or("");
        entry["versions"].push_back(next);
        rotated.push_back(vault + "/" + name + "/" + next["version"].get<std::string>());
      }
    }
    Save();
    res.set_content(json{{"rotated", rotated}}.dump(), "application/json");
    return;
  }
  if (req.path == "/admin/faults") {
    if (req.method == "DELETE") {
      faults_ = json::array();
    } else {
      std::string kind = body.value("kind", "");
      if (kind != "latency" && kind != "429" && kind != "500" && kind != "503" && kind != "drop" &&
          kind != "garbage") {
        return ArmError(res, 400, "BadRequest",
                        "kind must be latency, 429, 500, 503, drop or garbage");
      }
      faults_.push_back({{"operation", Lower(body.value("operation", "*"))},
                         {"kind", kind},
                         {"remaining", body.value("count", 1)},
                         {"latency_ms", body.value("latency_ms", 1000)},
                         {"retry_after", body.value("retry_after", 1)},
                         {"rate", body.value("rate", 1.0)}});
      // garbage: HTTP 200 with a malformed body; "variant" types (default) or truncated, or
      // the exact "body" to send.
      if (kind == "garbage") {
        faults_.back()["variant"] = body.value("variant", "types");
        if (body.contains("body") && body["body"].is_string())
          faults_.back()["body"] = body["body"];
      }
    }
    res.set_content(json{{"faults", faults_}}.dump(), "application/json");
    return;
  }
  if (req.path == "/admin/counters") {
    if (req.method == "DELETE") counters_ = json::object();
    res.set_content(counters_.dump(), "application/json");
    return;
  }
  ArmError(res, 404, "NotFound",
           "admin routes: POST /admin/principals, POST|DELETE /admin/faults, GET|DELETE "
           "/admin/counters");
}

}  // namespace keyward::emulator
