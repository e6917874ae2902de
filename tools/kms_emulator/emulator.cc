#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client_assertion.h"
#include "crypto/random.h"
#include "emulator_impl.h"
#include "jwt.h"
#include "rsa_keys.h"
#include "tls_material.h"
#include "util/base64.h"
#include "util/file_util.h"

namespace keyward::emulator {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Lower(std::string s) { return absl::AsciiStrToLower(s); }

std::string Uuid() {
  std::string h = RandomHex(16).value_or(std::string(32, '0'));
  return absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-4", h.substr(13, 3), "-a",
                      h.substr(17, 3), "-", h.substr(20, 12));
}

void KvError(httplib::Response& res, int status, const std::string& code,
             const std::string& message, const std::string& inner) {
  json err = {{"code", code}, {"message", message}};
  if (!inner.empty()) err["innererror"] = {{"code", inner}};
  res.status = status;
  res.set_content(json{{"error", err}}.dump(), "application/json");
}

// Actions each role grants (Azure's built-in role definitions, the parts Key Vault keys use).
bool RoleAllows(const std::string& role_id, const std::string& action) {
  if (absl::EndsWith(role_id, kCryptoOfficer)) {
    return absl::StartsWith(action, "Microsoft.KeyVault/vaults/keys/") ||
           absl::StartsWith(action, "Microsoft.KeyVault/vaults/keyrotationpolicies/") ||
           absl::StartsWith(action, "Microsoft.KeyVault/vaults/deletedKeys/");
  }
  if (absl::EndsWith(role_id, kHsmCryptoUser)) {
    return absl::StartsWith(action, "Microsoft.KeyVault/managedHsm/keys/");
  }
  if (absl::EndsWith(role_id, kHsmCryptoServiceEncryptionUser)) {
    return action == "Microsoft.KeyVault/managedHsm/keys/read/action" ||
           action == "Microsoft.KeyVault/managedHsm/keys/wrap/action" ||
           action == "Microsoft.KeyVault/managedHsm/keys/unwrap/action";
  }
  if (absl::EndsWith(role_id, kCryptoServiceEncryptionUser)) {
    return action == "Microsoft.KeyVault/vaults/keys/read" ||
           action == "Microsoft.KeyVault/vaults/keys/wrap/action" ||
           action == "Microsoft.KeyVault/vaults/keys/unwrap/action";
  }
  return false;
}

absl::Status EmulatorImpl::Init() {
  if (options_.state_dir.empty()) return absl::InvalidArgumentError("--state-dir is required");
  absl::Status st = MakeDirs(options_.state_dir, 0700);
  // A restarted emulator keeps its CA, so clients that trust it keep working.
  bool have_tls = access((options_.state_dir + "/ca.pem").c_str(), F_OK) == 0 &&
                  access((options_.state_dir + "/server.key").c_str(), F_OK) == 0;
  if (st.ok() && !have_tls) st = WriteTlsMaterial(options_.state_dir);
  if (!st.ok()) return st;
  auto text = ReadFileToString(options_.state_dir + "/state.json", 64 << 20);
  if (text.ok()) state_ = json::parse(*text, nullptr, false);
  if (!state_.is_object()) {
    state_ = {{"tenant_id", Uuid()},          {"jwt_secret", RandomHex(32).value_or("")},
              {"principals", json::object()}, {"vaults", json::object()},
              {"keys", json::object()},       {"role_assignments", json::object()}};
  }
  server_ = std::make_unique<httplib::SSLServer>((options_.state_dir + "/server.pem").c_str(),
                                                 (options_.state_dir + "/server.key").c_str());
  if (!server_->is_valid()) return absl::InternalError("TLS server could not load its certificate");
  // Like the real service, never the bottleneck of a test: SDK clients and keyward keep
  // connections open (each holds one of httplib's 8 default workers) and a TLS handshake on a
  // loaded CI machine can take seconds. CI saw one handshake reset; these limits are the
  // likely cause, not a proven one.
  server_->new_task_queue = [] { return new httplib::ThreadPool(64); };
  server_->set_keep_alive_max_count(1000);
  server_->set_read_timeout(30);
  Routes();
  port_ = options_.port == 0
              ? server_->bind_to_any_port(options_.host)
              : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port_ <= 0)
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.host, ":", options_.port));
  Save();
  return absl::OkStatus();
}

void EmulatorImpl::Save() {
  if (options_.state_dir.empty()) return;
  WriteFileAtomically(options_.state_dir + "/state.json", state_.dump(), 0600).IgnoreError();
}

// The body of a `garbage` fault: the fault's own "body" when given; else "truncated" JSON, or
// (the default, "types") JSON of the right shape for `op` with every field of the wrong type.
std::string EmulatorImpl::GarbageBody(const std::string& op, const std::string& variant,
                                      const json& fault) {
  if (fault.contains("body") && fault["body"].is_string()) return fault["body"];
  if (variant == "truncated") {
    return R"({"kid":"https://kv.vault.azure.net/keys/k/0123456789abcdef","value":"AAECAw)";
  }
  if (op == "getkey") {
    return R"({"key":{"kid":42,"key_ops":"wrapKey"},"attributes":{"enabled":"yes","exp":"never"}})";
  }
  if (op == "wrapkey" || op == "unwrapkey")
    return R"({"kid":["not","a","kid"],"value":{"b":null}})";
  if (op == "token" || op == "imds") return R"({"access_token":{"t":null},"expires_in":"soon"})";
  if (op == "arm") return R"({"location":7,"properties":{"enablePurgeProtection":"yes"}})";
  if (absl::StartsWith(op, "aws.")) {
    return R"({"KeyMetadata":{"KeyId":7,"Enabled":"yes","KeyState":[]},"CiphertextBlob":{"b":1},)"
           R"("Plaintext":["x"],"KeyId":null})";
  }
  return R"({"error":{"code":["garbage"]}})";
}

bool EmulatorImpl::Fault(const std::string& op, httplib::Response& res) {
  int latency = 0;
  int status = 0;
  int retry_after = 0;
  bool drop = false;
  std::optional<std::string> garbage;
  {
    std::lock_guard<std::mutex> lock(mu_);
    counters_[op] = counters_.value(op, 0) + 1;
    for (auto& f : faults_) {
      if (f["operation"] != "*" && f["operation"] != op) continue;
      if (f["remaining"].get<int>() <= 0) continue;
      // "rate": the share of matching calls that fail (1 = every one), until `count` have.
      double rate = f.value("rate", 1.0);
      if (rate < 1.0) {
        uint32_t r = 0;
        FillRandom(&r, sizeof(r)).IgnoreError();
        if (static_cast<double>(r) / 4294967296.0 >= rate) continue;
      }
      f["remaining"] = f["remaining"].get<int>() - 1;
      std::string kind = f["kind"];
      if (kind == "latency") latency = f.value("latency_ms", 1000);
      if (kind == "429" || kind == "500" || kind == "503") status = std::stoi(kind);
      drop = kind == "drop";
      if (kind == "garbage") garbage = GarbageBody(op, f.value("variant", "types"), f);
      retry_after = f.value("retry_after", 1);
      break;
    }
  }
  if (latency > 0) std::this_thread::sleep_for(std::chrono::milliseconds(latency));
  if (drop) {
    // Headers go out, then the connection closes before the promised body: a dropped connection.
    res.set_content_provider(64, "application/json",
                             [](size_t, size_t, httplib::DataSink&) { return false; });
    return true;
  }
  if (garbage) {
    // HTTP 200 with a body no client can use: what a broken proxy or a service bug looks like.
    res.status = 200;
    res.set_content(*garbage, "application/json");
    return true;
  }
  if (status == 0) return false;
  if (absl::StartsWith(op, "aws.")) {
    // AWS's shapes: throttling is a 400 the SDKs retry by its __type.
    res.status = status == 429 ? 400 : status;
    const char* type = status == 429   ? "ThrottlingException"
                       : status == 503 ? "DependencyTimeoutException"
                                       : "KMSInternalException";
    res.set_content(
        json{{"__type", type}, {"message", status == 429 ? "Rate exceeded" : "injected fault"}}
            .dump(),
        "application/x-amz-json-1.1");
    return true;
  }
  if (status == 429) {
    res.set_header("Retry-After", std::to_string(retry_after));
    KvError(res, 429, "Throttled",
            "Request was not processed because too many requests were received.");
  } else {
    KvError(res, status, "InternalServerError",
            "The service encountered an internal error (injected fault).");
  }
  return true;
}

std::string EmulatorImpl::IssueToken(const json& principal, const std::string& audience) {
  json claims = {{"iss", "https://login.microsoftonline.com/" + Tenant() + "/v2.0"},
                 {"aud", audience},
                 {"tid", Tenant()},
                 {"appid", principal["client_id"]},
                 {"azp", principal["client_id"]},
                 {"oid", principal["object_id"]},
                 {"sub", principal["object_id"]},
                 {"iat", Now()},
                 {"nbf", Now() - 60},
                 {"exp", Now() + 3600}};
  return SignJwt(claims, Secret());
}

void EmulatorImpl::EntraError(httplib::Response& res, int status, const std::string& error,
                              const std::string& aadsts, const std::string& text) {
  res.status = status;
  res.set_content(json{{"error", error},
                       {"error_description", absl::StrCat("AADSTS", aadsts, ": ", text)},
                       {"error_codes", json::array({std::stoi(aadsts)})}}
                      .dump(),
                  "application/json");
}

void EmulatorImpl::Token(const httplib::Request& req, httplib::Response& res,
                         const std::string& tenant) {
  if (Fault("token", res)) return;
  if (tenant != Tenant() && tenant != "organizations") {
    return EntraError(res, 400, "invalid_request", "90002", "Tenant '" + tenant + "' not found.");
  }
  if (req.get_param_value("grant_type") != "client_credentials") {
    return EntraError(res, 400, "unsupported_grant_type", "70003",
                      "The app requested an unsupported grant type.");
  }
  std::string client_id = req.get_param_value("client_id");
  std::string scope = req.get_param_value("scope");
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_["principals"].contains(client_id)) {
    return EntraError(
        res, 400, "unauthorized_client", "700016",
        "Application with identifier '" + client_id + "' was not found in the directory.");
  }
  const json& p = state_["principals"][client_id];
  if (req.has_param("client_assertion")) {
    if (req.get_param_value("client_assertion_type") !=
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
      return EntraError(res, 400, "invalid_request", "50027",
                        "client_assertion_type must be jwt-bearer.");
    }
    std::string assertion = req.get_param_value("client_assertion");
    if (p.contains("certificate_pem")) {
      std::string token_url = "https://" + req.get_header_value("Host") + req.path;
      absl::Status st =
          VerifyCertificateAssertion(assertion, p["certificate_pem"], client_id, token_url, Now());
      if (!st.ok())
        return EntraError(res, 401, "invalid_client", "700027", std::string(st.message()));
    } else if (p.contains("federated_subject")) {
      auto claims = VerifyJwt(assertion, Secret(), Now());
      if (!claims.ok() || (*claims).value("aud", "") != "api://AzureADTokenExchange" ||
          (*claims).value("sub", "") != p["federated_subject"].get<std::string>()) {
        return EntraError(res, 401, "invalid_client", "70021",
                          "No matching federated identity record found for presented assertion.");
      }
    } else {
      return EntraError(res, 401, "invalid_client", "700027",
                        "The application has no certificate or federated credential.");
    }
  } else if (req.get_param_value("client_secret") != p["client_secret"].get<std::string>()) {
    return EntraError(res, 401, "invalid_client", "7000215", "Invalid client secret provided.");
  }
  std::string audience = scope;
  if (absl::EndsWith(audience, "/.default")) audience.resize(audience.size() - 9);
  if (audience != kVaultAudience && audience != kArmAudience && audience != kHsmAudience) {
    return EntraError(res, 400, "invalid_scope", "500011",
                      "The resource principal named " + audience + " was not found.");
  }
  res.set_content(json{{"token_type", "Bearer"},
                       {"expires_in", 3599},
                       {"ext_expires_in", 3599},
                       {"access_token", IssueToken(p, audience)}}
                      .dump(),
                  "application/json");
}

void EmulatorImpl::Imds(const httplib::Request& req, httplib::Response& res) {
  if (Fault("imds", res)) return;
  if (req.get_header_value("Metadata") != "true") {
    res.status = 400;
    res.set_content(
        R"({"error":"invalid_request","error_description":"Required metadata header not specified"})",
        "application/json");
    return;
  }
  std::string resource = req.get_param_value("resource");
  while (!resource.empty() && resource.back() == '/') resource.pop_back();
  std::string wanted = req.get_param_value("client_id");
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, p] : state_["principals"].items()) {
    if (!p.value("managed_identity", false) || (!wanted.empty() && wanted != id)) continue;
    std::string token = IssueToken(p, resource);
    res.set_content(json{{"access_token", token},
                         {"expires_in", "3599"},
                         {"expires_on", std::to_string(Now() + 3599)},
                         {"resource", resource},
                         {"token_type", "Bearer"},
                         {"client_id", id}}
                        .dump(),
                    "application/json");
    return;
  }
  res.status = 400;
  res.set_content(R"({"error":"invalid_request","error_description":"Identity not found"})",
                  "application/json");
}

std::optional<json> EmulatorImpl::Authenticate(const httplib::Request& req, httplib::Response& res,
                                               const std::string& audience) {
  std::string auth = req.get_header_value("Authorization");
  auto challenge = [&](const std::string& why) {
    res.set_header("WWW-Authenticate",
                   absl::StrCat("Bearer authorization=\"https://login.microsoftonline.com/",
                                Tenant(), "\", resource=\"", audience, "\""));
    KvError(res, 401, "Unauthorized", why);
  };
  if (!absl::StartsWith(auth, "Bearer ")) {
    challenge("AKV10000: Request is missing a Bearer or PoP token.");
    return std::nullopt;
  }
  auto claims = VerifyJwt(auth.substr(7), Secret(), Now());
  if (!claims.ok()) {
    challenge(absl::StrCat("AKV10032: Invalid token: ", claims.status().message()));
    return std::nullopt;
  }
  std::string aud = (*claims).value("aud", "");
  while (!aud.empty() && aud.back() == '/') aud.pop_back();
  if (aud != audience || (*claims).value("tid", "") != Tenant()) {
    challenge("AKV10022: Invalid audience or tenant.");
    return std::nullopt;
  }
  return *claims;
}

bool EmulatorImpl::ScopeCovers(const std::string& assignment, const std::string& resource) {
  std::string a = Lower(assignment), r = Lower(resource);
  while (!a.empty() && a.back() == '/') a.pop_back();
  return r == a || absl::StartsWith(r, a + "/");
}

bool EmulatorImpl::Allowed(const std::string& object_id, const std::string& scope,
                           const std::string& action) {
  for (const auto& [id, ra] : state_["role_assignments"].items()) {
    if (ra["principalId"] == object_id && ScopeCovers(ra["scope"], scope) &&
        RoleAllows(ra["roleDefinitionId"], action)) {
      return true;
    }
  }
  return false;
}

std::string EmulatorImpl::VaultScope(const std::string& vault) {
  const json& v = state_["vaults"][vault];
  return absl::StrCat("/subscriptions/", v["subscription"].get<std::string>(), "/resourceGroups/",
                      v["resource_group"].get<std::string>(),
                      "/providers/Microsoft.KeyVault/vaults/", vault);
}

absl::StatusOr<std::unique_ptr<Emulator>> Emulator::New(EmulatorOptions options) {
  auto e = std::make_unique<EmulatorImpl>(std::move(options));
  absl::Status st = e->Init();
  if (!st.ok()) return st;
  return std::unique_ptr<Emulator>(std::move(e));
}

}  // namespace keyward::emulator
