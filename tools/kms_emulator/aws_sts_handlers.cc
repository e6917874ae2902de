// AWS STS on the emulator's port (Query protocol: form POST to /, XML replies), the two calls
// keyward makes: GetCallerIdentity (SigV4, service "sts": who am I, so keyward can show
// customers its real principal) and AssumeRoleWithWebIdentity (unsigned: a web identity token
// from POST /admin/federated-tokens {"subject","audience":"sts.amazonaws.com"} for a role
// principal created with "web_identity_subject" gives temporary credentials of that role).

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "aws_kms_service.h"
#include "crypto/random.h"
#include "jwt.h"
#include "kms/aws/sigv4.h"

namespace keyward::emulator {
namespace {

void StsError(httplib::Response& res, int status, const std::string& code,
              const std::string& message) {
  res.status = status;
  res.set_content(absl::StrCat("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                               "<Error><Type>Sender</Type><Code>",
                               code, "</Code><Message>", message, "</Message></Error><RequestId>",
                               Uuid(), "</RequestId></ErrorResponse>"),
                  "text/xml");
}

std::string Iso8601(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// arn:aws:iam::ACCT:role/NAME → arn:aws:sts::ACCT:assumed-role/NAME/SESSION
std::string AssumedRoleArn(const json& p, const std::string& session) {
  std::string name = p["name"];
  if (absl::StartsWith(name, "role/")) name = name.substr(5);
  return absl::StrCat("arn:aws:sts::", p["account_id"].get<std::string>(), ":assumed-role/", name,
                      "/", session);
}

}  // namespace

void EmulatorImpl::AwsSts(const httplib::Request& req, httplib::Response& res) {
  std::string action = req.get_param_value("Action");
  if (Fault("aws.sts." + Lower(action), res)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (action == "GetCallerIdentity") {
    // SigV4 as for KMS, but scoped to service "sts".
    auto caller = AwsAuthenticate(req, res, "sts");
    if (!caller) return;
    const json& p = state_["aws"]["principals"][caller->access_key_id];
    std::string arn = p.contains("session_token")
                          ? AssumedRoleArn(p, p.value("session_name", "session"))
                          : caller->arn;
    res.set_content(
        absl::StrCat(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
            "<GetCallerIdentityResult><Arn>",
            arn, "</Arn><UserId>AIDA", caller->access_key_id.substr(4), "</UserId><Account>",
            caller->account, "</Account></GetCallerIdentityResult><ResponseMetadata>",
            "<RequestId>", Uuid(), "</RequestId></ResponseMetadata>",
            "</GetCallerIdentityResponse>"),
        "text/xml");
    return;
  }
  if (action == "AssumeRoleWithWebIdentity") {
    std::string role_arn = req.get_param_value("RoleArn");
    std::string session = req.get_param_value("RoleSessionName");
    auto claims = VerifyJwt(req.get_param_value("WebIdentityToken"), Secret(), Now());
    if (!claims.ok() || (*claims).value("aud", "") != "sts.amazonaws.com") {
      return StsError(res, 400, "InvalidIdentityToken",
                      "Couldn't verify the web identity token (signature, expiry or audience).");
    }
    json* role = nullptr;
    for (auto& [id, p] : state_["aws"]["principals"].items()) {
      if (p["arn"] == role_arn && !p.contains("session_token")) role = &p;
    }
    if (role == nullptr || !role->contains("web_identity_subject") ||
        (*role)["web_identity_subject"] != (*claims).value("sub", "")) {
      return StsError(res, 403, "AccessDenied",
                      "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    }
    json s = *role;
    s.erase("web_identity_subject");
    s["access_key_id"] = "ASIA" + RandomHex(8).value_or("");
    for (char& c : s["access_key_id"].get_ref<std::string&>()) c = static_cast<char>(toupper(c));
    s["secret_access_key"] = RandomHex(20).value_or("");
    s["session_token"] = "KW" + RandomHex(48).value_or("");
    s["session_name"] = session;
    s["expires"] = Now() + 3600;
    state_["aws"]["principals"][s["access_key_id"].get<std::string>()] = s;
    Save();
    res.set_content(
        absl::StrCat(
            "<AssumeRoleWithWebIdentityResponse "
            "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
            "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>",
            s["access_key_id"].get<std::string>(), "</AccessKeyId><SecretAccessKey>",
            s["secret_access_key"].get<std::string>(), "</SecretAccessKey><SessionToken>",
            s["session_token"].get<std::string>(), "</SessionToken><Expiration>",
            Iso8601(s["expires"].get<int64_t>()),
            "</Expiration></Credentials><AssumedRoleUser><Arn>", AssumedRoleArn(s, session),
            "</Arn></AssumedRoleUser><SubjectFromWebIdentityToken>", (*claims).value("sub", ""),
            "</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult>"
            "</AssumeRoleWithWebIdentityResponse>"),
        "text/xml");
    return;
  }
  StsError(res, 400, "InvalidAction", "Could not find operation " + action.substr(0, 64));
}

}  // namespace keyward::emulator
