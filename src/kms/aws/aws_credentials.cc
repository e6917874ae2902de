#include "kms/aws/aws_credentials.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kms/aws/aws_replies.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward::aws {
namespace {

constexpr int64_t kRefreshMarginSeconds = 300;

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v == nullptr ? "" : v;
}

int64_t WallClock() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

AwsCredentialOptions AwsCredentialOptionsFromEnvironment(const std::string& region) {
  AwsCredentialOptions o;
  o.access_key_id = Env("AWS_ACCESS_KEY_ID");
  o.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
  o.session_token = Env("AWS_SESSION_TOKEN");
  if (!Env("AWS_PROFILE").empty()) o.profile = Env("AWS_PROFILE");
  std::string home = Env("HOME");
  o.credentials_file = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (o.credentials_file.empty() && !home.empty()) o.credentials_file = home + "/.aws/credentials";
  o.config_file = Env("AWS_CONFIG_FILE");
  if (o.config_file.empty() && !home.empty()) o.config_file = home + "/.aws/config";
  o.web_identity_token_file = Env("AWS_WEB_IDENTITY_TOKEN_FILE");
  o.role_arn = Env("AWS_ROLE_ARN");
  if (!Env("AWS_ROLE_SESSION_NAME").empty()) o.role_session_name = Env("AWS_ROLE_SESSION_NAME");
  o.sts_endpoint = Env("AWS_ENDPOINT_URL_STS");
  if (o.sts_endpoint.empty()) o.sts_endpoint = Env("AWS_ENDPOINT_URL");
  while (!o.sts_endpoint.empty() && o.sts_endpoint.back() == '/') o.sts_endpoint.pop_back();
  o.sts_region = region.empty() ? "us-east-1" : region;
  if (o.sts_endpoint.empty()) {
    o.sts_endpoint = absl::StrCat("https://sts.", region.empty() ? "us-east-1" : region,
                                  ".amazonaws.com", absl::StartsWith(region, "cn-") ? ".cn" : "");
  }
  if (!Env("AWS_EC2_METADATA_SERVICE_ENDPOINT").empty()) {
    o.imds_enabled = true;
    o.imds_endpoint = Env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    while (!o.imds_endpoint.empty() && o.imds_endpoint.back() == '/') o.imds_endpoint.pop_back();
  }
  if (absl::AsciiStrToLower(Env("AWS_EC2_METADATA_DISABLED")) == "true") o.imds_enabled = false;
  return o;
}

AwsCredentialSource::AwsCredentialSource(AwsCredentialOptions options,
                                         std::shared_ptr<HttpClient> http)
    : options_(std::move(options)), http_(std::move(http)) {
  if (!options_.now) options_.now = WallClock;
}

bool AwsCredentialSource::configured() const {
  auto exists = [](const std::string& f) { return !f.empty() && access(f.c_str(), R_OK) == 0; };
  return !options_.access_key_id.empty() || exists(options_.credentials_file) ||
         exists(options_.config_file) || !options_.web_identity_token_file.empty() ||
         options_.imds_enabled;
}

std::string AwsCredentialSource::source() const {
  std::lock_guard<std::mutex> lock(mu_);
  return source_;
}

absl::StatusOr<SigV4Credentials> AwsCredentialSource::Get(bool force_refresh) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ && !force_refresh &&
        (expires_at_ == 0 || options_.now() < expires_at_ - kRefreshMarginSeconds)) {
      return *cached_;
    }
  }
  std::string source;
  int64_t expires_at = 0;
  auto c = Fetch(&source, &expires_at);
  if (!c.ok()) return c.status();
  std::lock_guard<std::mutex> lock(mu_);
  cached_ = *c;
  expires_at_ = expires_at;
  source_ = source;
  return c;
}

absl::StatusOr<SigV4Credentials> AwsCredentialSource::Fetch(std::string* source,
                                                            int64_t* expires_at) {
  if (!options_.access_key_id.empty() || !options_.secret_access_key.empty()) {
    if (options_.access_key_id.empty() || options_.secret_access_key.empty()) {
      return absl::FailedPreconditionError(
          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    }
    *source = "environment";
    return SigV4Credentials{options_.access_key_id, options_.secret_access_key,
                            options_.session_token};
  }
  auto profile = FromProfile(source);
  if (!profile.ok()) return profile.status();
  if (*profile) return **profile;
  if (!options_.web_identity_token_file.empty()) {
    *source = absl::StrCat("web identity (", options_.role_arn, ")");
    return FromWebIdentity(expires_at);
  }
  if (options_.imds_enabled) {
    *source = "EC2 instance metadata";
    return FromImds(expires_at);
  }
  return absl::FailedPreconditionError(
      "this keyward server has no AWS credentials: set AWS_ACCESS_KEY_ID and "
      "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys), or AWS_PROFILE with "
      "~/.aws/credentials, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, or "
      "AWS_EC2_METADATA_SERVICE_ENDPOINT on EC2; then restart keyward serve");
}

absl::StatusOr<std::optional<SigV4Credentials>> AwsCredentialSource::FromProfile(
    std::string* source) {
  const std::string& name = options_.profile;
  // The credentials file names sections after the profile; the config file writes
  // [profile name] except for [default]. The credentials file wins.
  std::vector<std::pair<std::string, std::string>> places = {
      {options_.credentials_file, name},
      {options_.config_file, name == "default" ? "default" : "profile " + name}};
  bool profile_named = name != "default";
  for (const auto& [file, section] : places) {
    if (file.empty() || access(file.c_str(), R_OK) != 0) continue;
    auto text = ReadFileToString(file, 1 << 20);
    if (!text.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read AWS shared file ", file, ": ", text.status().message()));
    }
    auto ini = ParseIni(*text);
    auto it = ini.find(section);
    if (it == ini.end()) continue;
    const auto& kv = it->second;
    auto get = [&](const char* k) {
      auto f = kv.find(k);
      return f == kv.end() ? std::string() : f->second;
    };
    std::string id = get("aws_access_key_id"), secret = get("aws_secret_access_key");
    if (id.empty() && secret.empty()) continue;
    if (id.empty() || secret.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("AWS profile '", name, "' in ", file,
                       " needs both aws_access_key_id and aws_secret_access_key"));
    }
    *source = absl::StrCat("profile ", name, " in ", file);
    return std::optional<SigV4Credentials>(SigV4Credentials{id, secret, get("aws_session_token")});
  }
  if (profile_named) {
    return absl::FailedPreconditionError(absl::StrCat(
        "AWS_PROFILE is '", name, "' but no access key for it is in ", options_.credentials_file,
        " or ", options_.config_file, "; add the profile or unset AWS_PROFILE"));
  }
  return std::optional<SigV4Credentials>();
}

absl::StatusOr<std::string> AwsCredentialSource::CallerPrincipalArn() {
  auto creds = Get();
  if (!creds.ok()) return creds.status();
  std::string rest = options_.sts_endpoint.substr(options_.sts_endpoint.find("://") + 3);
  SigV4Request r;
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
               {"Host", rest.substr(0, rest.find('/'))}};
  r.body = "Action=GetCallerIdentity&Version=2011-06-15";
  RETURN_IF_ERROR(Sign(r, *creds, options_.sts_region, "sts", options_.now()));
  HttpRequest req{"POST", options_.sts_endpoint + "/", {}, r.body};
  for (const auto& [name, value] : r.headers)
    req.headers.push_back(absl::StrCat(name, ": ", value));
  auto res = http_->Send(req);
  if (!res.ok()) return res.status();
  if (res->status != 200) {
    return absl::PermissionDeniedError(absl::StrCat(
        "STS GetCallerIdentity at ", options_.sts_endpoint, " answered HTTP ", res->status));
  }
  return ParseCallerIdentityArn(res->body);
}

absl::StatusOr<SigV4Credentials> AwsCredentialSource::FromWebIdentity(int64_t* expires_at) {
  if (options_.role_arn.empty()) {
    return absl::FailedPreconditionError(
        "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not; set the role to assume");
  }
  auto token = ReadFileToString(options_.web_identity_token_file, 64 << 10);
  if (!token.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read AWS_WEB_IDENTITY_TOKEN_FILE ",
                                                      options_.web_identity_token_file, ": ",
                                                      token.status().message()));
  }
  std::string body =
      FormEncode({{"Action", "AssumeRoleWithWebIdentity"},
                  {"Version", "2011-06-15"},
                  {"RoleArn", options_.role_arn},
                  {"RoleSessionName", options_.role_session_name},
                  {"WebIdentityToken", std::string(absl::StripAsciiWhitespace(*token))}});
  auto res = http_->Send({"POST",
                          options_.sts_endpoint + "/",
                          {"Content-Type: application/x-www-form-urlencoded"},
                          body});
  if (!res.ok()) return res.status();
  if (res->status != 200) {
    std::string code;
    size_t a = res->body.find("<Code>"), b = res->body.find("</Code>");
    if (a != std::string::npos && b != std::string::npos && b > a)
      code = res->body.substr(a + 6, std::min<size_t>(b - a - 6, 64));
    auto status = res->status >= 500 ? absl::UnavailableError("") : absl::PermissionDeniedError("");
    return absl::Status(
        status.code(), absl::StrCat("STS AssumeRoleWithWebIdentity for ", options_.role_arn,
                                    " failed (HTTP ", res->status, " ", code,
                                    "); check the role's trust policy for this identity provider"));
  }
  auto c = ParseStsCredentials(res->body);
  if (!c.ok()) {
    return absl::UnavailableError(
        absl::StrCat("STS answered with a reply keyward cannot read: ", c.status().message()));
  }
  *expires_at = c->expires_at;
  return SigV4Credentials{c->access_key_id, c->secret_access_key, c->session_token};
}

absl::StatusOr<SigV4Credentials> AwsCredentialSource::FromImds(int64_t* expires_at) {
  const std::string base = options_.imds_endpoint;
  auto token = http_->Send(
      {"PUT", base + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds: 21600"}, ""});
  if (!token.ok()) return token.status();
  if (token->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("EC2 instance metadata refused a session token (HTTP ", token->status, ")"));
  }
  std::string header = "X-aws-ec2-metadata-token: " + token->body;
  const std::string path = base + "/latest/meta-data/iam/security-credentials/";
  auto role = http_->Send({"GET", path, {header}, ""});
  if (!role.ok()) return role.status();
  std::string name(absl::StripAsciiWhitespace(role->body.substr(0, role->body.find('\n'))));
  if (role->status != 200 || name.empty()) {
    return absl::FailedPreconditionError(
        "this EC2 instance has no IAM role (instance profile); attach one to give keyward an "
        "AWS identity");
  }
  auto creds = http_->Send({"GET", path + name, {header}, ""});
  if (!creds.ok()) return creds.status();
  if (creds->status != 200) {
    return absl::UnavailableError(absl::StrCat("EC2 instance metadata credentials for role ", name,
                                               " answered HTTP ", creds->status));
  }
  auto c = ParseImdsCredentials(creds->body);
  if (!c.ok()) return c.status();
  *expires_at = c->expires_at;
  return SigV4Credentials{c->access_key_id, c->secret_access_key, c->session_token};
}

}  // namespace keyward::aws
