#include "kms/aws/aws_kms_provider.h"

#include <openssl/crypto.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "kms/aws/aws_replies.h"
#include "kms/serve_settings.h"
#include "util/base64.h"
#include "util/status_macros.h"

namespace keyward::aws {
namespace {

using nlohmann::json;

int64_t KmsWallClock() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void WipeKms(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

std::string Excerpt(const std::string& s, size_t n = 300) {
  std::string out = s.substr(0, n);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

// The "kms:Action" an AccessDeniedException message names ("... to perform: kms:Decrypt on ..."),
// or "".
std::string ActionIn(const std::string& message) {
  constexpr std::string_view kMarker = "perform: ";
  size_t at = message.find(kMarker);
  if (at == std::string::npos) return "";
  at += kMarker.size();
  size_t end = message.find(' ', at);
  std::string action = message.substr(at, end == std::string::npos ? 64 : end - at);
  return absl::StartsWith(action, "kms:") && action.size() < 64 ? action : "";
}

// RFC 7231 date ("Sun, 29 Nov 2026 07:00:00 GMT") to unix seconds, or 0.
int64_t ParseHttpDate(const std::string& s) {
  struct tm tm {};
  if (strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

std::string AwsKmsProvider::EndpointFor(const AwsKmsConfig& config, const std::string& region) {
  if (!config.endpoint_url.empty()) {
    std::string url = config.endpoint_url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
  }
  return absl::StrCat("https://kms", config.use_fips ? "-fips" : "", ".", region, ".amazonaws.com",
                      absl::StartsWith(region, "cn-") ? ".cn" : "");
}

absl::StatusOr<std::unique_ptr<AwsKmsProvider>> AwsKmsProvider::New(
    const KmsKeyRef& key, AwsKmsConfig config, std::shared_ptr<AwsCredentialSource> credentials,
    std::shared_ptr<HttpClient> http) {
  const json& cfg = key.config;
  std::string arn = cfg.is_object() && cfg.contains("key_arn") && cfg["key_arn"].is_string()
                        ? cfg["key_arn"].get<std::string>()
                        : key.key_name;
  std::string region = RegionOfArn(arn);
  if (region.empty() || !absl::StrContains(arn, ":key/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("encryption key record ", key.record_id, " has no AWS KMS key ARN"));
  }
  std::unique_ptr<AwsKmsProvider> p(new AwsKmsProvider());
  p->config_ = std::move(config);
  if (!p->config_.now) p->config_.now = KmsWallClock;
  p->credentials_ = std::move(credentials);
  p->http_ = std::move(http);
  p->arn_ = arn;
  p->region_ = region;
  p->project_id_ = key.project_id;
  p->endpoint_ = EndpointFor(p->config_, region);
  std::string rest = p->endpoint_.substr(p->endpoint_.find("://") + 3);
  p->host_ = rest.substr(0, rest.find('/'));
  if (absl::EndsWith(p->host_, ":443") && absl::StartsWith(p->endpoint_, "https://")) {
    p->host_.resize(p->host_.size() - 4);
  }
  return p;
}

nlohmann::json AwsKmsProvider::Context(std::string_view context) const {
  return json{{"keyward_context", std::string(context)}, {"keyward_project", project_id_}};
}

absl::StatusOr<std::string> AwsKmsProvider::Call(const std::string& operation,
                                                 const std::string& body) {
  bool refreshed = false, clock_fixed = false;
  int64_t clock_offset = 0;
  for (int attempt = 1;; ++attempt) {
    auto creds = credentials_->Get(/*force_refresh=*/refreshed && attempt > 1);
    if (!creds.ok()) {
      // STS or instance metadata not answering is transient; anything else (nothing configured,
      // an unreadable token file, a role STS refuses) is this server's set-up, not the key's.
      if (absl::IsUnavailable(creds.status()) || absl::IsDeadlineExceeded(creds.status())) {
        return creds.status();
      }
      return KmsServerSetupError(creds.status());
    }
    SigV4Request r;
    r.method = "POST";
    r.path = endpoint_.substr(endpoint_.find(host_) + host_.size());
    if (r.path.empty()) r.path = "/";
    r.headers = {{"Content-Type", "application/x-amz-json-1.1"},
                 {"Host", host_},
                 {"X-Amz-Target", "TrentService." + operation}};
    r.body = body;
    RETURN_IF_ERROR(Sign(r, *creds, region_, "kms", config_.now() + clock_offset));
    HttpRequest req{"POST", endpoint_ + (r.path == "/" ? "/" : ""), {}, std::move(r.body)};
    for (auto& [name, value] : r.headers) req.headers.push_back(absl::StrCat(name, ": ", value));
    auto res = http_->Send(req);
    WipeKms(req.body);
    for (auto& h : req.headers) WipeKms(h);
    if (!res.ok()) return res.status();
    if (res->status == 200) return std::move(res->body);
    AwsErrorBody err = ParseAwsError(res->body);
    if (err.type == "ThrottlingException" && attempt < config_.throttle_attempts) {
      // Exponential backoff with full jitter, as the AWS SDKs retry throttling.
      int64_t cap = 200LL << std::min(attempt - 1, 6);
      uint32_t rnd = 0;
      FillRandom(&rnd, sizeof(rnd)).IgnoreError();
      http_->options().sleep(std::chrono::milliseconds(rnd % static_cast<uint32_t>(cap + 1)));
      continue;
    }
    if ((err.type == "UnrecognizedClientException" || err.type == "ExpiredTokenException") &&
        !refreshed) {
      refreshed = true;  // temporary credentials may have been replaced: fetch them again
      continue;
    }
    bool skew = err.type == "InvalidSignatureException" &&
                (absl::StrContains(err.message, "Signature expired") ||
                 absl::StrContains(err.message, "not yet current"));
    if (skew && !clock_fixed) {
      auto date = res->headers.find("date");
      int64_t server = date == res->headers.end() ? 0 : ParseHttpDate(date->second);
      if (server > 0) {
        clock_fixed = true;  // sign with the server's clock, as the SDKs do after a skew error
        clock_offset = server - config_.now();
        continue;
      }
    }
    return ServiceError(*res, operation);
  }
}

absl::Status AwsKmsProvider::ServiceError(const HttpResponse& res,
                                          const std::string& operation) const {
  AwsErrorBody err = ParseAwsError(res.body);
  const std::string& t = err.type;
  std::string message = Excerpt(err.message);
  std::string key = absl::StrCat("AWS KMS key ", arn_);
  if (t == "NotFoundException") {
    return absl::NotFoundError(absl::StrCat(key, " was not found in ", region_, " (", message,
                                            "); check the key ARN and that the key exists"));
  }
  if (t == "DisabledException") {
    return absl::FailedPreconditionError(absl::StrCat(
        "encryption key for aws/", region_, " is disabled in AWS KMS (key ", arn_,
        "); enable it (aws kms enable-key --key-id ", arn_, "), then resume the cluster"));
  }
  if (t == "KMSInvalidStateException") {
    return absl::FailedPreconditionError(
        absl::StrCat(key, " cannot be used in its current state (", message,
                     "); if it is pending deletion, run aws kms cancel-key-deletion --key-id ",
                     arn_, " and aws kms enable-key --key-id ", arn_));
  }
  if (t == "AccessDeniedException") {
    std::string action = ActionIn(err.message);
    if (action.empty()) action = "kms:" + operation;
    return absl::PermissionDeniedError(absl::StrCat(
        "keyward's AWS principal ",
        config_.principal_arn.empty() ? "" : config_.principal_arn + " ", "may not perform ",
        action, " on ", key, "; add ", action, " to the Action list of the key policy statement \"",
        kKeywardPolicySid, "\" (keyward key show prints the statement)"));
  }
  if (t == "InvalidCiphertextException" || t == "IncorrectKeyException") {
    return absl::DataLossError(absl::StrCat(
        key, " refused to decrypt (", t,
        "): the wrapped key does not belong to this key or to this cluster's encryption context"));
  }
  if (t == "ThrottlingException" || t == "KMSInternalException" ||
      t == "DependencyTimeoutException" || res.status >= 500 || res.status == 429) {
    return absl::UnavailableError(absl::StrCat("AWS KMS in ", region_, " is unavailable for ",
                                               operation, " (HTTP ", res.status, " ",
                                               Excerpt(t, 64), ") after retries; try again"));
  }
  if (t == "InvalidSignatureException" || t == "UnrecognizedClientException" ||
      t == "IncompleteSignatureException" || t == "MissingAuthenticationTokenException" ||
      t == "ExpiredTokenException") {
    return KmsServerSetupError(absl::UnauthenticatedError(absl::StrCat(
        "AWS KMS refused keyward's credentials (", Excerpt(t, 64), ": ", message,
        "); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile, and the clock")));
  }
  return absl::InvalidArgumentError(absl::StrCat("AWS KMS rejected ", operation, " on ", key,
                                                 " (HTTP ", res.status, " ", Excerpt(t, 64),
                                                 "): ", message));
}

absl::StatusOr<KeyDescription> AwsKmsProvider::Describe() {
  auto body = Call("DescribeKey", json{{"KeyId", arn_}}.dump());
  if (!body.ok()) return body.status();
  auto d = ParseDescribeKey(*body);
  if (!d.ok()) {
    return absl::UnavailableError(
        absl::StrCat("AWS KMS answered DescribeKey with a reply keyward "
                     "cannot read (",
                     d.status().message(), "); treating it as transient"));
  }
  KeyDescription out;
  out.key_id = d->arn;
  // AWS keeps material versions inside its ciphertext blobs and shows none: no version here.
  out.enabled = d->enabled && d->key_state == "Enabled";
  out.region = RegionOfArn(d->arn);
  out.can_wrap = d->key_spec == "SYMMETRIC_DEFAULT" && d->key_usage == "ENCRYPT_DECRYPT";
  return out;
}

absl::StatusOr<WrappedKey> AwsKmsProvider::Wrap(const SecretBytes& plaintext,
                                                std::string_view context) {
  json body = {{"KeyId", arn_},
               {"Plaintext", Base64Encode(plaintext.view())},
               {"EncryptionContext", Context(context)}};
  std::string payload = body.dump();
  WipeKms(body["Plaintext"].get_ref<std::string&>());
  auto reply = Call("Encrypt", payload);
  WipeKms(payload);
  if (!reply.ok()) return reply.status();
  auto enc = ParseEncryptReply(*reply);
  if (!enc.ok()) {
    return absl::UnavailableError(
        absl::StrCat("AWS KMS answered Encrypt with a reply keyward cannot read (",
                     enc.status().message(), ")"));
  }
  // The reply names the key that encrypted: it must be ours (a key id or our ARN).
  if (enc->key_id != arn_) {
    return absl::UnavailableError(absl::StrCat("AWS KMS answered Encrypt for key ",
                                               Excerpt(enc->key_id, 128), ", not ", arn_));
  }
  return WrappedKey{"aws-kms", arn_, "", "SYMMETRIC_DEFAULT", std::move(enc->ciphertext)};
}

absl::StatusOr<SecretBytes> AwsKmsProvider::Unwrap(const WrappedKey& wrapped,
                                                   std::string_view context) {
  if (wrapped.provider != "aws-kms") {
    return absl::FailedPreconditionError(
        absl::StrCat("key was wrapped by ", wrapped.provider, ", not AWS KMS"));
  }
  // The key is this provider's own, never one a wrapped blob names: a backup manifest or
  // dictionary is read from storage an attacker may write, and a blob wrapped under another
  // KMS key that grants keyward Decrypt must not be accepted as the customer's.
  if (!wrapped.key_id.empty() && wrapped.key_id != arn_) {
    return absl::FailedPreconditionError(absl::StrCat("the key was wrapped under AWS KMS key ",
                                                      Excerpt(wrapped.key_id, 128), ", not ", arn_,
                                                      " (this cluster's key): refused"));
  }
  json body = {{"KeyId", arn_},
               {"CiphertextBlob", Base64Encode(wrapped.ciphertext)},
               {"EncryptionContext", Context(context)}};
  auto reply = Call("Decrypt", body.dump());
  if (!reply.ok()) return reply.status();
  auto dec = ParseDecryptReply(*reply);
  WipeKms(*reply);
  if (!dec.ok()) {
    return absl::UnavailableError(
        absl::StrCat("AWS KMS answered Decrypt with a reply keyward cannot read (",
                     dec.status().message(), ")"));
  }
  if (dec->key_id != arn_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "AWS KMS decrypted with key ", Excerpt(dec->key_id, 128), ", not ", arn_, ": refused"));
  }
  return std::move(dec->plaintext);
}

}  // namespace keyward::aws
