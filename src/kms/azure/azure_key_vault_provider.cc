#include "kms/azure/azure_key_vault_provider.h"

#include <nlohmann/json.hpp>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "util/base64.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr char kVaultResource[] = "https://vault.azure.net";
constexpr char kHsmResource[] = "https://managedhsm.azure.net";
constexpr char kArmResource[] = "https://management.azure.com";

// The version is the last path segment of a kid: https://{vault}/keys/{name}/{version}.
std::string VersionOf(const std::string& kid) {
  static const std::regex kKid("^https://[^/]+/keys/([^/]+)/([0-9a-fA-F]+)$");
  std::smatch m;
  return std::regex_match(kid, m, kKid) ? m[2].str() : "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<AzureKeyVaultProvider>> AzureKeyVaultProvider::New(
    const EncryptionKey& key, AzureKeyVaultConfig config, std::shared_ptr<EntraTokenSource> tokens,
    std::shared_ptr<HttpClient> http) {
  json cfg = json::parse(key.config_json, nullptr, false);
  if (!cfg.is_object() || (!cfg.contains("key_vault_name") && !cfg.contains("managed_hsm_name"))) {
    return absl::InvalidArgumentError(
        "encryption key record has no key_vault_name or managed_hsm_name");
  }
  std::unique_ptr<AzureKeyVaultProvider> p(new AzureKeyVaultProvider());
  p->config_ = std::move(config);
  p->tokens_ = std::move(tokens);
  p->http_ = std::move(http);
  p->hsm_ = cfg.contains("managed_hsm_name");
  p->service_ = p->hsm_ ? "Managed HSM" : "Key Vault";
  p->resource_ = p->hsm_ ? kHsmResource : kVaultResource;
  p->algorithm_ = p->hsm_ ? "A256KW" : "RSA-OAEP-256";
  p->vault_ = absl::AsciiStrToLower(cfg.value(p->hsm_ ? "managed_hsm_name" : "key_vault_name", ""));
  p->vault_url_ = absl::StrReplaceAll(
      p->hsm_ ? p->config_.managed_hsm_url_template : p->config_.vault_url_template,
      {{"{name}", p->vault_}});
  p->key_name_ = key.key_name;
  p->region_ = key.region;
  p->subscription_id_ = cfg.value("subscription_id", "");
  p->resource_group_ = cfg.value("resource_group", "");
  return p;
}

std::string AzureKeyVaultProvider::key_id() const {
  return absl::StrCat(vault_url_, "/keys/", key_name_);
}

absl::StatusOr<HttpResponse> AzureKeyVaultProvider::Call(const std::string& method,
                                                         const std::string& url,
                                                         const std::string& body,
                                                         const std::string& resource) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto token = tokens_->Token(resource, /*force_refresh=*/attempt > 0);
    if (!token.ok()) return token.status();
    HttpRequest req{
        method, url, {"Authorization: Bearer " + *token, "Content-Type: application/json"}, body};
    auto res = http_->Send(req);
    // A wrap request carries key material and the header a bearer token: wipe our copies.
    WipeString(req.body);
    WipeString(req.headers[0]);
    if (!res.ok()) return res;
    if (res->status != 401) return res;  // a 401 means the cached token went stale: refresh once
    if (attempt == 1) return res;
  }
  return absl::InternalError("unreachable");
}

absl::Status AzureKeyVaultProvider::ServiceError(const HttpResponse& res,
                                                 const std::string& operation) const {
  json j = json::parse(res.body, nullptr, false);
  json err = j.is_object() ? j.value("error", json::object()) : json::object();
  std::string code = err.value("code", "");
  std::string inner = err.value("innererror", json::object()).value("code", "");
  std::string message = err.value("message", "");
  std::string where = absl::StrCat("key '", key_name_, "' in ", service_, " '", vault_, "'");
  if (res.status == 404) {
    return absl::NotFoundError(
        absl::StrCat(where, " was not found (", code, "); create the key under exactly that name"));
  }
  if (inner == "KeyDisabled") {
    return absl::FailedPreconditionError(
        absl::StrCat("encryption key for azure/", region_, " is disabled in ", service_, " '",
                     vault_, "' (key '", key_name_, "'); enable it, then resume the cluster"));
  }
  if (res.status == 403) {
    static const std::regex kAction("Action: '([^']+)'");
    std::smatch m;
    std::string action = std::regex_search(message, m, kAction) ? m[1].str() : operation;
    return absl::PermissionDeniedError(absl::StrCat(
        "keyward's application ", config_.app_name, " (", tokens_->identity().client_id,
        ") may not perform ", action, " on ", where, "; assign it the role ", service_,
        " Crypto Service Encryption User on the key",
        inner.empty() ? "" : absl::StrCat(" (", inner, ")")));
  }
  if (res.status == 401) {
    return absl::UnauthenticatedError(absl::StrCat(
        service_, " '", vault_, "' refused keyward's token: ", message.substr(0, 200)));
  }
  if (res.status == 429 || res.status >= 500) {
    return absl::UnavailableError(absl::StrCat(service_, " '", vault_, "' is unavailable for ",
                                               operation, " (HTTP ", res.status, " ", code,
                                               ") after retries; try again"));
  }
  return absl::InvalidArgumentError(absl::StrCat(service_, " '", vault_, "' rejected ", operation,
                                                 " (HTTP ", res.status, " ", code,
                                                 "): ", message.substr(0, 200)));
}

absl::StatusOr<KeyDescription> AzureKeyVaultProvider::Describe() {
  std::string url =
      absl::StrCat(vault_url_, "/keys/", key_name_, "/?api-version=", config_.api_version);
  auto res = Call("GET", url, "", resource_);
  if (!res.ok()) return res.status();
  if (res->status != 200) return ServiceError(*res, "get key");
  json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || !j.contains("key"))
    return absl::DataLossError("Key Vault answered a key bundle keyward cannot read");
  KeyDescription d;
  d.key_id = j["key"].value("kid", "");
  d.key_version = VersionOf(d.key_id);
  json attrs = j.value("attributes", json::object());
  d.enabled = attrs.value("enabled", false);
  if (attrs.contains("recoveryLevel")) {
    std::string level = attrs["recoveryLevel"];
    d.purge_protection = level == "Recoverable" || level == "CustomizedRecoverable";
  }
  if (j["key"].contains("key_ops")) {
    bool wrap = false, unwrap = false;
    for (const auto& op : j["key"]["key_ops"]) {
      wrap |= op == "wrapKey";
      unwrap |= op == "unwrapKey";
    }
    d.can_wrap = wrap && unwrap;
  }
  if (!subscription_id_.empty() && !resource_group_.empty()) {
    std::string arm =
        absl::StrCat(config_.management_host, "/subscriptions/", subscription_id_,
                     "/resourceGroups/", resource_group_, "/providers/Microsoft.KeyVault/vaults/",
                     vault_, "?api-version=2023-07-01");
    auto vault = Call("GET", arm, "", kArmResource);
    if (vault.ok() && vault->status == 200) {
      json v = json::parse(vault->body, nullptr, false);
      if (v.is_object()) {
        d.region = absl::AsciiStrToLower(v.value("location", ""));
        json props = v.value("properties", json::object());
        if (props.contains("enablePurgeProtection"))
          d.purge_protection = props["enablePurgeProtection"].get<bool>();
      }
    }
  }
  return d;
}

absl::StatusOr<WrappedKey> AzureKeyVaultProvider::Wrap(const SecretBytes& plaintext,
                                                       std::string_view) {
  std::string url =
      absl::StrCat(vault_url_, "/keys/", key_name_, "//wrapkey?api-version=", config_.api_version);
  std::string encoded = Base64UrlEncode(plaintext.view());
  json body = {{"alg", algorithm_}, {"value", encoded}};
  std::string payload = body.dump();
  WipeString(encoded);
  WipeString(body["value"].get_ref<std::string&>());
  auto res = Call("POST", url, payload, resource_);
  WipeString(payload);
  if (!res.ok()) return res.status();
  if (res->status != 200) return ServiceError(*res, "wrapKey");
  json j = json::parse(res->body, nullptr, false);
  auto value =
      j.is_object() ? Base64Decode(j.value("value", "")) : absl::InvalidArgumentError("not JSON");
  std::string kid = j.is_object() ? j.value("kid", "") : "";
  if (!value.ok() || VersionOf(kid).empty())
    return absl::DataLossError("Key Vault answered a wrapKey result keyward cannot read");
  return WrappedKey{"azure-key-vault", kid, VersionOf(kid), algorithm_, *value};
}

absl::StatusOr<SecretBytes> AzureKeyVaultProvider::Unwrap(const WrappedKey& wrapped,
                                                          std::string_view) {
  if (wrapped.provider != "azure-key-vault") {
    return absl::FailedPreconditionError(
        absl::StrCat("key was wrapped by ", wrapped.provider, ", not Azure Key Vault"));
  }
  std::string version = VersionOf(wrapped.key_id);
  if (version.empty())
    return absl::DataLossError("wrapped-key record has no Key Vault key version");
  std::string url = absl::StrCat(vault_url_, "/keys/", key_name_, "/", version,
                                 "/unwrapkey?api-version=", config_.api_version);
  json body = {{"alg", wrapped.algorithm}, {"value", Base64UrlEncode(wrapped.ciphertext)}};
  auto res = Call("POST", url, body.dump(), resource_);
  if (!res.ok()) return res.status();
  if (res->status != 200) return ServiceError(*res, "unwrapKey");
  json j = json::parse(res->body, nullptr, false);
  auto value =
      j.is_object() ? Base64Decode(j.value("value", "")) : absl::InvalidArgumentError("not JSON");
  if (!value.ok())
    return absl::DataLossError("Key Vault answered an unwrapKey result keyward cannot read");
  SecretBytes out = SecretBytes::FromView(*value);
  WipeString(*value);
  WipeString(res->body);
  if (j.is_object() && j.contains("value") && j["value"].is_string()) {
    WipeString(j["value"].get_ref<std::string&>());
  }
  return out;
}

}  // namespace keyward
