// AWS KMS (JSON 1.1: POST /, X-Amz-Target: TrentService.<Op>) on the emulator's HTTPS port:
// SigV4 verified against the access keys the admin API issued, then key management here and
// cryptography in aws_kms_crypto.cc. Errors are shaped as AWS sends them:
// {"__type":"NotFoundException","message":...}, HTTP 400 unless AWS uses another status.

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "aws_kms.h"
#include "aws_kms_service.h"
#include "crypto/random.h"
#include "kms/aws/sigv4.h"

namespace keyward::emulator {
namespace aws {

void AwsError(httplib::Response& res, int status, const std::string& type,
              const std::string& message) {
  res.status = status;
  json body = {{"__type", type}};
  if (!message.empty()) body["message"] = message;
  res.set_content(body.dump(), "application/x-amz-json-1.1");
}

namespace {

constexpr int kMaxSkewSeconds = 300;

std::string HttpDate(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string RandomUpper(size_t n) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    uint8_t b = 0;
    FillRandom(&b, 1).IgnoreError();
    out += kAlphabet[b % 32];
  }
  return out;
}

std::string RandomAccount() {
  std::string out;
  for (int i = 0; i < 12; ++i) {
    uint8_t b = 0;
    FillRandom(&b, 1).IgnoreError();
    out += static_cast<char>('0' + (i == 0 ? 1 + b % 9 : b % 10));
  }
  return out;
}

json& AwsState(json& state) {
  if (!state.contains("aws") || !state["aws"].is_object()) {
    state["aws"] = {
        {"principals", json::object()}, {"keys", json::object()}, {"aliases", json::object()}};
  }
  return state["aws"];
}

// The region a Host such as kms.us-east-1.amazonaws.com names, or "" (an IP, a private name).
std::string HostRegion(const std::string& host) {
  static const std::regex kHost("^kms(-fips)?\\.([a-z0-9-]+)\\.amazonaws\\.com(:[0-9]+)?$");
  std::smatch m;
  std::string h = absl::AsciiStrToLower(host);
  return std::regex_match(h, m, kHost) ? m[2].str() : "";
}

}  // namespace
}  // namespace aws

using aws::AwsError;

std::optional<aws::Caller> EmulatorImpl::AwsAuthenticate(const httplib::Request& req,
                                                         httplib::Response& res,
                                                         const std::string& service) {
  json& st = aws::AwsState(state_);
  std::string header = req.get_header_value("Authorization");
  if (header.empty()) {
    AwsError(res, 400, "MissingAuthenticationTokenException", "Missing Authentication Token");
    return std::nullopt;
  }
  auto auth = keyward::aws::ParseAuthorization(header);
  if (!auth.ok()) {
    AwsError(res, 400, "IncompleteSignatureException", std::string(auth.status().message()));
    return std::nullopt;
  }
  auto invalid = [&](const std::string& message) {
    AwsError(res, 400, "InvalidSignatureException", message);
    return std::nullopt;
  };
  if (!st["principals"].contains(auth->access_key_id)) {
    AwsError(res, 400, "UnrecognizedClientException",
             "The security token included in the request is invalid.");
    return std::nullopt;
  }
  const json& p = st["principals"][auth->access_key_id];
  std::string token = req.get_header_value("X-Amz-Security-Token");
  if (token != p.value("session_token", "") ||
      (p.contains("expires") && p["expires"].get<int64_t>() < Now())) {
    AwsError(res, 400, "UnrecognizedClientException",
             "The security token included in the request is invalid.");
    return std::nullopt;
  }
  if (auth->service != service) {
    return invalid("Credential should be scoped to correct service: '" + service + "'. ");
  }
  std::string host_region =
      service == "kms" ? aws::HostRegion(req.get_header_value("Host")) : std::string();
  if (!aws::KnownRegion(auth->region) || (!host_region.empty() && host_region != auth->region)) {
    return invalid(
        absl::StrCat("Credential should be scoped to a valid region, not '", auth->region, "'. "));
  }
  if (auth->terminator != "aws4_request") {
    return invalid(
        absl::StrCat("Credential should be scoped with a valid terminator: 'aws4_request', not '",
                     auth->terminator, "'. "));
  }
  bool host_signed = false;
  for (const auto& h : auth->signed_headers) host_signed |= h == "host";
  if (!host_signed) {
    return invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  std::string amz_date = req.get_header_value("X-Amz-Date");
  auto when = keyward::aws::ParseAmzDate(amz_date);
  if (!when.ok()) {
    AwsError(res, 400, "IncompleteSignatureException",
             "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
             "header.");
    return std::nullopt;
  }
  if (amz_date.substr(0, 8) != auth->date) {
    return invalid(absl::StrCat(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '",
        auth->date, "' != '", amz_date.substr(0, 8), "', from '", amz_date, "'."));
  }
  int64_t now = Now();
  if (*when < now - aws::kMaxSkewSeconds) {
    return invalid(absl::StrCat("Signature expired: ", amz_date, " is now earlier than ",
                                keyward::aws::AmzDate(now - aws::kMaxSkewSeconds), " (",
                                keyward::aws::AmzDate(now), " - 5 min.)"));
  }
  if (*when > now + aws::kMaxSkewSeconds) {
    return invalid(absl::StrCat("Signature not yet current: ", amz_date, " is still later than ",
                                keyward::aws::AmzDate(now + aws::kMaxSkewSeconds), " (",
                                keyward::aws::AmzDate(now), " + 5 min.)"));
  }
  keyward::aws::SigV4Request r;
  r.method = req.method;
  std::string target = req.target.empty() ? "/" : req.target;
  size_t q = target.find('?');
  r.path = target.substr(0, q);
  r.query = q == std::string::npos ? "" : target.substr(q + 1);
  for (const auto& [name, value] : req.headers) r.headers.emplace_back(name, value);
  r.body = req.body;
  std::string sts = keyward::aws::StringToSign(
      amz_date, auth->scope(), keyward::aws::CanonicalRequest(r, auth->signed_headers));
  std::string expected = keyward::aws::Signature(p["secret_access_key"].get<std::string>(),
                                                 auth->date, auth->region, auth->service, sts);
  if (!keyward::aws::SignaturesEqual(expected, auth->signature)) {
    return invalid(
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.");
  }
  return aws::Caller{auth->access_key_id, p["arn"], p["account_id"], auth->region};
}

void EmulatorImpl::AwsKms(const httplib::Request& req, httplib::Response& res) {
  res.set_header("x-amzn-RequestId", Uuid());
  // The SDKs correct their clock from this header after a skew error.
  res.set_header("Date", aws::HttpDate(Now()));
  std::string target = req.get_header_value("X-Amz-Target");
  constexpr char kPrefix[] = "TrentService.";
  if (req.method != "POST" || !absl::StartsWith(target, kPrefix)) {
    return AwsError(res, 400, "UnknownOperationException", "");
  }
  std::string op = target.substr(sizeof(kPrefix) - 1);
  if (Fault("aws." + Lower(op), res)) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto caller = AwsAuthenticate(req, res);
  if (!caller) return;
  json body = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
  if (!body.is_object()) {
    return AwsError(res, 400, "SerializationException",
                    "Start of structure or map found where not expected.");
  }
  aws::AwsService(*this, aws::AwsState(state_), *caller, res).Serve(op, body);
}

void EmulatorImpl::AwsAdmin(const httplib::Request& req, httplib::Response& res, const json& body) {
  json& st = aws::AwsState(state_);
  if (req.path == "/admin/aws/principals" && req.method == "POST") {
    std::string name = body.value("name", "");
    std::string subject = body.value("web_identity_subject", "");
    static const std::regex kName("^(role/|user/)?[A-Za-z0-9+=,.@_-]{1,64}$");
    if (!std::regex_match(name, kName)) {
      return AwsError(res, 400, "ValidationException",
                      "name must be an IAM user or role name (optionally role/NAME or user/NAME)");
    }
    std::string account = body.value("account_id", "");
    if (account.empty()) account = aws::RandomAccount();
    if (account.size() != 12 || !std::all_of(account.begin(), account.end(), ::isdigit)) {
      return AwsError(res, 400, "ValidationException", "account_id must be 12 digits");
    }
    std::string path = absl::StrContains(name, "/") ? name : "user/" + name;
    json p = {{"name", name},
              {"account_id", account},
              {"arn", absl::StrCat("arn:aws:iam::", account, ":", path)},
              {"access_key_id", "AKIA" + aws::RandomUpper(16)},
              {"secret_access_key", RandomHex(20).value_or("")}};
    if (!subject.empty()) p["web_identity_subject"] = subject;
    st["principals"][p["access_key_id"].get<std::string>()] = p;
    Save();
    res.status = 201;
    res.set_content(p.dump(), "application/json");
    return;
  }
  // Temporary credentials of an existing principal (what STS hands out): an ASIA key with a
  // session token, valid for `duration_seconds` (default 3600).
  if (req.path == "/admin/aws/sessions" && req.method == "POST") {
    std::string parent = body.value("access_key_id", "");
    if (!st["principals"].contains(parent)) {
      return AwsError(res, 404, "NotFoundException", "no principal with that access_key_id");
    }
    json p = st["principals"][parent];
    p["access_key_id"] = "ASIA" + aws::RandomUpper(16);
    p["secret_access_key"] = RandomHex(20).value_or("");
    p["session_token"] = "KW" + RandomHex(48).value_or("");
    p["expires"] = Now() + body.value("duration_seconds", 3600);
    st["principals"][p["access_key_id"].get<std::string>()] = p;
    Save();
    res.status = 201;
    res.set_content(p.dump(), "application/json");
    return;
  }
  AwsError(res, 404, "NotFound", "admin routes: POST /admin/aws/principals, /admin/aws/sessions");
}

}  // namespace keyward::emulator
