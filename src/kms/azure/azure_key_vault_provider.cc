#include "kms/azure/azure_key_vault_provider.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "kms/azure/azure_replies.h"
#include "util/base64.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr char kVaultResource[] = "https://vault.azure.net";
constexpr char kHsmResource[] = "https://managedhsm.azure.net";
constexpr char kArmResource[] = "https://management.azure.com";

// A string member of our own key record, or "" (the record is ours, but a file all the same).
std::string ConfigString(const json& cfg, const char* name) {
  auto it = cfg.find(name);
  return it != cfg.end() && it->is_string() ? it->get<std::string>() : "";
}

// Whether a wrap reply's kid names the key we asked for: https://<vault>.<domain>/keys/<name>/<v>
// (names compare case-insensitively, as Key Vault's do). A reply for another vault or key would
// be recorded, and unwrapped later, as ours.
bool KidNamesKey(const std::string& kid, const std::string& vault, const std::string& key_name) {
  const std::string scheme = "https://";
  if (!absl::StartsWithIgnoreCase(kid, scheme)) return false;
  size_t slash = kid.find('/', scheme.size());
  if (slash == std::string::npos) return false;
  std::string host = kid.substr(scheme.size(), slash - scheme.size());
  std::string path = kid.substr(slash);
  std::string prefix = absl::StrCat("/keys/", key_name, "/");
  return absl::StartsWithIgnoreCase(host, absl::StrCat(vault, ".")) &&
         absl::StartsWithIgnoreCase(path, prefix) && path.size() > prefix.size();
}

// The RBAC action a 403 message names ("... Action: 'Microsoft.KeyVault/...' ..."), or "".
std::string ActionIn(std::string_view message) {
  constexpr std::string_view kMarker = "Action: '";
  size_t start = message.find(kMarker);
  if (start == std::string_view::npos) return "";
  start += kMarker.size();
  size_t end = message.find('\'', start);
  if (end == std::string_view::npos || end == start) return "";
  return std::string(message.substr(start, end - start));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AzureKeyVaultProvider>> AzureKeyVaultProvider::New(
    const KmsKeyRef& key, AzureKeyVaultConfig config, std::shared_ptr<EntraTokenSource> tokens,
    std::shared_ptr<HttpClient> http) {
  const json& cfg = key.config;
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
  p->vault_ =
      absl::AsciiStrToLower(ConfigString(cfg, p->hsm_ ? "managed_hsm_name" : "key_vault_name"));
  p->vault_url_ = absl::StrReplaceAll(
      p->hsm_ ? p->config_.managed_hsm_url_template : p->config_.vault_url_template,
      {{"{name}", p->vault_}});
  p->key_name_ = key.key_name;
  p->region_ = key.region;
  p->subscription_id_ = ConfigString(cfg, "subscription_id");
  p->resource_group_ = ConfigString(cfg, "resource_group");
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

absl::Status AzureKeyVaultProvider::Unreadable(const std::string& operation,
                                               const absl::Status& why) const {
  return absl::UnavailableError(absl::StrCat(service_, " '", vault_, "' answered ", operation,
                                             " with a reply keyward cannot read (", why.message(),
                                             "); treating it as a transient failure"));
}

absl::Status AzureKeyVaultProvider::ServiceError(const HttpResponse& res,
                                                 const std::string& operation) const {
  // The HTTP status is what the service meant; an error body we cannot read leaves the codes
  // empty and the mapping below falls back on the status alone.
  AzureErrorBody err = ParseAzureError(res.body).value_or(AzureErrorBody{});
  const std::string& code = err.code;
  const std::string& inner = err.inner_code;
  std::string message = ExcerptForMessage(err.message);
  std::string where = absl::StrCat("key '", key_name_, "' in ", service_, " '", vault_, "'");
  if (res.status == 404) {
    return absl::NotFoundError(absl::StrCat(where, " was not found (", ExcerptForMessage(code, 64),
                                            "); create the key under exactly that name"));
  }
  if (inner == "KeyDisabled") {
    return absl::FailedPreconditionError(
        absl::StrCat("encryption key for azure/", region_, " is disabled in ", service_, " '",
                     vault_, "' (key '", key_name_, "'); enable it, then resume the cluster"));
  }
  // Outside its activation window Key Vault refuses wrapKey with 403 Forbidden; the inner code
  // follows the service's SecretExpired pattern, the message says "expired key" either way.
  const bool forbidden = res.status == 403;
  const bool expired =
      inner == "KeyExpired" || (forbidden && absl::StrContains(err.message, "expired key"));
  const bool not_yet_valid =
      inner == "KeyNotYetValid" || (forbidden && absl::StrContains(err.message, "not yet valid"));
  if (expired || not_yet_valid) {
    return absl::FailedPreconditionError(absl::StrCat(
        "encryption key for azure/", region_, expired ? " has expired" : " is not yet valid",
        " in ", service_, " '", vault_, "' (key '", key_name_, "'); ",
        expired ? "set a later expiry date (az keyvault key set-attributes --expires)"
                : "move its activation date (az keyvault key set-attributes --not-before)",
        ", then resume the cluster"));
  }
  if (forbidden) {
    std::string action = ExcerptForMessage(ActionIn(err.message));
    if (action.empty()) action = operation;
    return absl::PermissionDeniedError(absl::StrCat(
        "keyward's application ", config_.app_name, " (", tokens_->identity().client_id,
        ") may not perform ", action, " on ", where, "; assign it the role ", service_,
        " Crypto Service Encryption User on the key",
        inner.empty() ? "" : absl::StrCat(" (", ExcerptForMessage(inner, 64), ")")));
  }
  if (res.status == 401) {
    return absl::UnauthenticatedError(
        absl::StrCat(service_, " '", vault_, "' refused keyward's token: ", message));
  }
  if (res.status == 429 || res.status >= 500) {
    return absl::UnavailableError(
        absl::StrCat(service_, " '", vault_, "' is unavailable for ", operation, " (HTTP ",
                     res.status, " ", ExcerptForMessage(code, 64), ") after retries; try again"));
  }
  return absl::InvalidArgumentError(absl::StrCat(service_, " '", vault_, "' rejected ", operation,
                                                 " (HTTP ", res.status, " ",
                                                 ExcerptForMessage(code, 64), "): ", message));
}

absl::StatusOr<KeyDescription> AzureKeyVaultProvider::Describe() {
  std::string url =
      absl::StrCat(vault_url_, "/keys/", key_name_, "/?api-version=", config_.api_version);
  auto res = Call("GET", url, "", resource_);
  if (!res.ok()) return res.status();
  if (res->status != 200) return ServiceError(*res, "get key");
  auto bundle = ParseKeyBundle(res->body);
  if (!bundle.ok()) return Unreadable("getKey", bundle.status());
  // Expiry and activation are reported, not judged: the caller decides what a window means.
  KeyDescription d;
  d.key_id = bundle->kid;
  d.key_version = bundle->version;
  d.enabled = bundle->enabled;
  d.not_before = bundle->not_before;
  d.expires_at = bundle->expires_at;
  if (bundle->recovery_level) {
    const std::string& level = *bundle->recovery_level;
    d.purge_protection = level == "Recoverable" || level == "CustomizedRecoverable";
  }
  if (bundle->key_ops) {
    bool wrap = false, unwrap = false;
    for (const auto& op : *bundle->key_ops) {
      wrap |= op == "wrapKey";
      unwrap |= op == "unwrapKey";
    }
    d.can_wrap = wrap && unwrap;
  }
  if (!subscription_id_.empty() && !resource_group_.empty()) {
    std::string arm =
        absl::StrCat(config_.management_host, "/subscriptions/", subscription_id_,
                     "/resourceGroups/", resource_group_, "/providers/Microsoft.KeyVault/",
                     hsm_ ? "managedHSMs/" : "vaults/", vault_, "?api-version=2023-07-01");
    auto vault = Call("GET", arm, "", kArmResource);
    // Vault-level facts are optional: a failed or unreadable ARM reply leaves them unknown,
    // exactly as missing read access on the vault does.
    if (vault.ok() && vault->status == 200) {
      if (auto v = ParseArmVault(vault->body); v.ok()) {
        if (v->location) d.region = *v->location;
        if (v->purge_protection) d.purge_protection = *v->purge_protection;
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
  WipeString(body["value"].get_ref<std::string&>());
  auto res = Call("POST", url, payload, resource_);
  WipeString(payload);
  if (res.ok() && res->status != 200) {
    // An error text that echoes the request would carry the key we asked to wrap into a
    // message (and so a log line or an API answer): such a body is dropped, the status kept.
    // (base64url as sent, or re-encoded as standard base64).
    std::string probe = encoded.substr(0, 16);
    std::string standard = absl::StrReplaceAll(probe, {{"-", "+"}, {"_", "/"}});
    // The decoded message too: JSON may escape '/' or '+' (\/, \u002B) in the raw body.
    std::string message = ParseAzureError(res->body).value_or(AzureErrorBody{}).message;
    bool echoed = false;
    for (const std::string* text : {&res->body, &message}) {
      echoed |= text->find(probe) != std::string::npos || text->find(standard) != std::string::npos;
    }
    WipeString(message);
    if (echoed) {
      WipeString(res->body);
      res->body.clear();
    }
    WipeString(probe);
    WipeString(standard);
  }
  WipeString(encoded);
  if (!res.ok()) return res.status();
  if (res->status != 200) return ServiceError(*res, "wrapKey");
  auto wrapped = ParseWrapResult(res->body);
  if (!wrapped.ok()) return Unreadable("wrapKey", wrapped.status());
  if (!KidNamesKey(wrapped->kid, vault_, key_name_)) {
    return Unreadable("wrapKey", absl::DataLossError(absl::StrCat(
                                     "the reply names a key other than '", key_name_, "'")));
  }
  return WrappedKey{"azure-key-vault", wrapped->kid, wrapped->version, algorithm_,
                    std::move(wrapped->ciphertext)};
}

absl::StatusOr<SecretBytes> AzureKeyVaultProvider::Unwrap(const WrappedKey& wrapped,
                                                          std::string_view) {
  if (wrapped.provider != "azure-key-vault") {
    return absl::FailedPreconditionError(
        absl::StrCat("key was wrapped by ", wrapped.provider, ", not Azure Key Vault"));
  }
  std::string version = KeyVersionFromKid(wrapped.key_id);
  if (version.empty())
    return absl::DataLossError("wrapped-key record has no Key Vault key version");
  std::string url = absl::StrCat(vault_url_, "/keys/", key_name_, "/", version,
                                 "/unwrapkey?api-version=", config_.api_version);
  json body = {{"alg", wrapped.algorithm}, {"value", Base64UrlEncode(wrapped.ciphertext)}};
  auto res = Call("POST", url, body.dump(), resource_);
  if (!res.ok()) return res.status();
  if (res->status != 200) return ServiceError(*res, "unwrapKey");
  auto unwrapped = ParseUnwrapResult(res->body);
  WipeString(res->body);
  if (!unwrapped.ok()) return Unreadable("unwrapKey", unwrapped.status());
  return std::move(unwrapped->plaintext);
}

}  // namespace keyward
