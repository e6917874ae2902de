#include "aws_kms.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace keyward::emulator::aws {
namespace {

std::vector<std::string> Strings(const json& v) {
  std::vector<std::string> out;
  if (v.is_string()) out.push_back(v.get<std::string>());
  if (v.is_array()) {
    for (const auto& s : v) {
      if (s.is_string()) out.push_back(s.get<std::string>());
    }
  }
  return out;
}

bool PrincipalMatches(const json& principal, const std::string& arn, const std::string& account) {
  if (principal.is_string()) return principal.get<std::string>() == "*";
  if (!principal.is_object() || !principal.contains("AWS")) return false;
  for (const auto& p : Strings(principal["AWS"])) {
    if (p == "*" || p == arn || p == account ||
        p == absl::StrCat("arn:aws:iam::", account, ":root"))
      return true;
  }
  return false;
}

}  // namespace

bool WildcardMatch(const std::string& pattern, const std::string& text) {
  std::string p = absl::AsciiStrToLower(pattern), t = absl::AsciiStrToLower(text);
  size_t pi = 0, ti = 0, star = std::string::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

PolicyDecision EvaluateKeyPolicy(const json& policy, const std::string& caller_arn,
                                 const std::string& caller_account, const std::string& action) {
  bool allowed = false;
  if (!policy.is_object()) return PolicyDecision::kImplicitDeny;
  json statements = policy.value("Statement", json::array());
  if (statements.is_object()) statements = json::array({statements});
  for (const auto& s : statements) {
    if (!s.is_object() ||
        !PrincipalMatches(s.value("Principal", json()), caller_arn, caller_account)) {
      continue;
    }
    bool matches = false;
    for (const auto& a : Strings(s.value("Action", json()))) matches |= WildcardMatch(a, action);
    if (!matches) continue;
    std::string effect = s.value("Effect", "");
    if (effect == "Deny") return PolicyDecision::kExplicitDeny;
    if (effect == "Allow") allowed = true;
  }
  return allowed ? PolicyDecision::kAllow : PolicyDecision::kImplicitDeny;
}

absl::Status ValidatePolicy(const json& policy) {
  if (!policy.is_object()) return absl::InvalidArgumentError("The policy is not valid JSON.");
  if (!policy.contains("Statement")) {
    return absl::InvalidArgumentError("Policy document is missing required field: Statement");
  }
  json statements = policy["Statement"];
  if (statements.is_object()) statements = json::array({statements});
  if (!statements.is_array()) return absl::InvalidArgumentError("Statement must be a list");
  for (const auto& s : statements) {
    if (!s.is_object()) return absl::InvalidArgumentError("Statement must be an object");
    std::string effect = s.value("Effect", "");
    if (effect != "Allow" && effect != "Deny") {
      return absl::InvalidArgumentError("Statement Effect must be Allow or Deny");
    }
    if (!s.contains("Principal")) {
      return absl::InvalidArgumentError("Policy statement must contain principals.");
    }
    if (!s.contains("Action")) {
      return absl::InvalidArgumentError("Policy statement must contain actions.");
    }
    for (const auto& a : Strings(s["Action"])) {
      if (a != "*" && !absl::StartsWithIgnoreCase(a, "kms:")) {
        return absl::InvalidArgumentError(
            absl::StrCat("Policy statement action '", a, "' is not a KMS action."));
      }
    }
  }
  return absl::OkStatus();
}

json DefaultKeyPolicy(const std::string& account_id) {
  return {
      {"Version", "2012-10-17"},
      {"Id", "key-default-1"},
      {"Statement", json::array({{{"Sid", "Enable IAM User Permissions"},
                                  {"Effect", "Allow"},
                                  {"Principal", {{"AWS", "arn:aws:iam::" + account_id + ":root"}}},
                                  {"Action", "kms:*"},
                                  {"Resource", "*"}}})}};
}

std::string MakeBlob(const std::string& key_id, uint32_t version, const std::string& sealed) {
  std::string out = "KWK1" + key_id;
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((version >> shift) & 0xff);
  return out + sealed;
}

std::optional<BlobParts> ParseBlob(const std::string& blob) {
  constexpr size_t kHeader = 4 + 36 + 4;
  if (blob.size() < kHeader + 12 + 16 || blob.compare(0, 4, "KWK1") != 0) return std::nullopt;
  BlobParts p;
  p.key_id = blob.substr(4, 36);
  for (int i = 0; i < 4; ++i) p.version = (p.version << 8) | static_cast<uint8_t>(blob[40 + i]);
  p.sealed = blob.substr(kHeader);
  return p;
}

std::string BlobAad(const std::string& key_id, uint32_t version, const json& context) {
  return absl::StrCat(key_id, "\n", version, "\n", context.is_object() ? context.dump() : "{}");
}

bool KnownRegion(const std::string& region) {
  static const char* kRegions[] = {
      "us-east-1",      "us-east-2",      "us-west-1",      "us-west-2",      "af-south-1",
      "ap-east-1",      "ap-south-1",     "ap-south-2",     "ap-southeast-1", "ap-southeast-2",
      "ap-southeast-3", "ap-southeast-4", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
      "ca-central-1",   "ca-west-1",      "eu-central-1",   "eu-central-2",   "eu-west-1",
      "eu-west-2",      "eu-west-3",      "eu-south-1",     "eu-south-2",     "eu-north-1",
      "il-central-1",   "me-south-1",     "me-central-1",   "sa-east-1",      "us-gov-east-1",
      "us-gov-west-1",  "cn-north-1",     "cn-northwest-1"};
  for (const char* r : kRegions) {
    if (region == r) return true;
  }
  return false;
}

}  // namespace keyward::emulator::aws
