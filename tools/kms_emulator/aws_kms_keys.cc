// AWS KMS key management on the emulator: keys, aliases, state changes, rotation, key policies,
// and the checks every operation shares (key resolution, key policy, key state).

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "aws_kms.h"
#include "aws_kms_service.h"
#include "crypto/random.h"

namespace keyward::emulator::aws {
namespace {

constexpr char kPendingDeletion[] = "PendingDeletion";

std::string AliasKey(const std::string& account, const std::string& region,
                     const std::string& name) {
  return absl::StrCat(account, ":", region, ":", name);
}

}  // namespace

void AwsService::Reply(const json& body) {
  res_.status = 200;
  res_.set_content(body.dump(), "application/x-amz-json-1.1");
}

bool AwsService::Required(const json& body, const char* field, const char* member_name) {
  if (body.contains(field) && !body[field].is_null()) return true;
  AwsError(res_, 400, "ValidationException",
           absl::StrCat("1 validation error detected: Value null at '", member_name,
                        "' failed to satisfy constraint: Member must not be null"));
  return false;
}

json* AwsService::ResolveKey(const json& body, const char* field) {
  if (!Required(body, field, field == std::string("KeyId") ? "keyId" : field)) return nullptr;
  if (!body[field].is_string() || body[field].get<std::string>().empty()) {
    AwsError(res_, 400, "ValidationException", absl::StrCat(field, " must be a non-empty string"));
    return nullptr;
  }
  std::string id = body[field];
  std::string account = caller_.account, region = caller_.region, key_id, alias;
  static const std::regex kArn("^arn:aws[a-z-]*:kms:([a-z0-9-]+):([0-9]{12}):(key|alias)/(.+)$");
  std::smatch m;
  if (std::regex_match(id, m, kArn)) {
    if (m[1].str() != caller_.region) {
      AwsError(res_, 400, "NotFoundException", "Invalid arn " + m[1].str());
      return nullptr;
    }
    account = m[2];
    (m[3] == "key" ? key_id : alias) = m[3] == "key" ? m[4].str() : "alias/" + m[4].str();
  } else if (absl::StartsWith(id, "alias/")) {
    alias = id;
  } else {
    key_id = id;
  }
  if (!alias.empty()) {
    std::string k = AliasKey(account, region, alias);
    if (!st_["aliases"].contains(k)) {
      AwsError(
          res_, 400, "NotFoundException",
          absl::StrCat("Alias arn:aws:kms:", region, ":", account, ":", alias, " is not found."));
      return nullptr;
    }
    key_id = st_["aliases"][k]["target"];
  }
  json& keys = st_["keys"];
  if (!keys.contains(key_id) || keys[key_id]["account"] != account ||
      keys[key_id]["region"] != region) {
    AwsError(res_, 400, "NotFoundException",
             absl::StrCat("Key 'arn:aws:kms:", region, ":", account, ":key/", key_id,
                          "' does not exist"));
    return nullptr;
  }
  return &keys[key_id];
}

bool AwsService::Authorized(const json& key, const std::string& action) {
  // Per key too ("aws.decrypt:<key id>"), so a test can count one key's calls among many.
  const std::string per_key = absl::StrCat("aws.", Lower(action.substr(action.find(':') + 1)), ":",
                                           key["id"].get<std::string>());
  emu_.counters_[per_key] = emu_.counters_.value(per_key, 0) + 1;
  PolicyDecision d = EvaluateKeyPolicy(key["policy"], caller_.arn, caller_.account, action);
  if (d == PolicyDecision::kAllow) return true;
  AwsError(res_, 400, "AccessDeniedException",
           absl::StrCat("User: ", caller_.arn, " is not authorized to perform: ", action,
                        " on resource: ", key["arn"].get<std::string>(),
                        d == PolicyDecision::kExplicitDeny
                            ? " with an explicit deny in a resource-based policy"
                            : absl::StrCat(" because no resource-based policy allows the ", action,
                                           " action")));
  return false;
}

bool AwsService::Usable(const json& key) {
  std::string state = key["state"];
  if (state == "Enabled") return true;
  if (state == "Disabled") {
    AwsError(res_, 400, "DisabledException", key["arn"].get<std::string>() + " is disabled.");
  } else {
    AwsError(res_, 400, "KMSInvalidStateException",
             key["arn"].get<std::string>() + " is pending deletion.");
  }
  return false;
}

bool AwsService::Symmetric(const json& key) {
  if (key["key_spec"] == "SYMMETRIC_DEFAULT" && key["key_usage"] == "ENCRYPT_DECRYPT") return true;
  AwsError(res_, 400, "InvalidKeyUsageException",
           absl::StrCat("You cannot use the KMS key ", key["arn"].get<std::string>(),
                        " for this operation: its KeySpec is ", key["key_spec"].get<std::string>(),
                        " and its KeyUsage ", key["key_usage"].get<std::string>(), "."));
  return false;
}

json AwsService::Metadata(const json& key) const {
  json m = {{"AWSAccountId", key["account"]},
            {"KeyId", key["id"]},
            {"Arn", key["arn"]},
            {"CreationDate", key["created"]},
            {"Enabled", key["state"] == "Enabled"},
            {"Description", key["description"]},
            {"KeyUsage", key["key_usage"]},
            {"KeyState", key["state"]},
            {"Origin", "AWS_KMS"},
            {"KeyManager", "CUSTOMER"},
            {"CustomerMasterKeySpec", key["key_spec"]},
            {"KeySpec", key["key_spec"]},
            {"MultiRegion", false}};
  if (key["key_spec"] == "SYMMETRIC_DEFAULT") {
    m["EncryptionAlgorithms"] = json::array({"SYMMETRIC_DEFAULT"});
  }
  if (key["state"] == kPendingDeletion) {
    m["DeletionDate"] = key["deletion_date"];
    m["PendingDeletionWindowInDays"] = key["pending_window"];
  }
  return m;
}

void AwsService::CreateKey(const json& body) {
  std::string usage = body.value("KeyUsage", "ENCRYPT_DECRYPT");
  std::string spec =
      body.value("KeySpec", body.value("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"));
  static const std::regex kSpecs(
      "^(SYMMETRIC_DEFAULT|RSA_(2048|3072|4096)|ECC_NIST_P(256|384|521)|ECC_SECG_P256K1|HMAC_(224|"
      "256|384|512))$");
  if (!std::regex_match(spec, kSpecs)) {
    return AwsError(res_, 400, "ValidationException",
                    "1 validation error detected: Value '" + spec +
                        "' at 'keySpec' failed to satisfy constraint: Member must satisfy enum "
                        "value set");
  }
  bool hmac = absl::StartsWith(spec, "HMAC_");
  if ((spec == "SYMMETRIC_DEFAULT" && usage != "ENCRYPT_DECRYPT") ||
      (hmac && usage != "GENERATE_VERIFY_MAC") ||
      (usage != "ENCRYPT_DECRYPT" && usage != "SIGN_VERIFY" && usage != "GENERATE_VERIFY_MAC")) {
    return AwsError(res_, 400, "ValidationException",
                    "KeyUsage " + usage + " is not compatible with KeySpec " + spec);
  }
  json policy = DefaultKeyPolicy(caller_.account);
  if (body.contains("Policy") && !AcceptablePolicy(body, &policy)) return;
  std::string id = Uuid();
  json key = {
      {"id", id},
      {"account", caller_.account},
      {"region", caller_.region},
      {"arn", absl::StrCat("arn:aws:kms:", caller_.region, ":", caller_.account, ":key/", id)},
      {"description", body.value("Description", "")},
      {"key_usage", usage},
      {"key_spec", spec},
      {"state", "Enabled"},
      {"created", Now()},
      {"policy", policy},
      {"rotation_enabled", false},
      {"rotation_period", 365},
      {"rotations", json::array()},
      {"versions", json::array({RandomHex(32).value_or("")})}};
  st_["keys"][id] = key;
  emu_.Save();
  Reply({{"KeyMetadata", Metadata(key)}});
}

void AwsService::DescribeKey(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:DescribeKey")) return;
  Reply({{"KeyMetadata", Metadata(*key)}});
}

void AwsService::ListKeys(const json&) {
  json keys = json::array();
  for (const auto& [id, k] : st_["keys"].items()) {
    if (k["account"] == caller_.account && k["region"] == caller_.region) {
      keys.push_back({{"KeyId", id}, {"KeyArn", k["arn"]}});
    }
  }
  Reply({{"Keys", keys}, {"Truncated", false}});
}

void AwsService::CreateAlias(const json& body) {
  if (!Required(body, "AliasName", "aliasName")) return;
  std::string name = body.value("AliasName", "");
  static const std::regex kAlias("^alias/[a-zA-Z0-9/_-]{1,250}$");
  if (!std::regex_match(name, kAlias) || absl::StartsWith(name, "alias/aws/")) {
    return AwsError(res_, 400, "ValidationException",
                    "Alias must start with the prefix \"alias/\" followed by letters, digits, / "
                    "_ or -, and must not begin with alias/aws/.");
  }
  json* key = ResolveKey(body, "TargetKeyId");
  if (!key || !Authorized(*key, "kms:CreateAlias")) return;
  std::string k = AliasKey(caller_.account, caller_.region, name);
  if (st_["aliases"].contains(k)) {
    return AwsError(res_, 400, "AlreadyExistsException",
                    absl::StrCat("An alias with the name arn:aws:kms:", caller_.region, ":",
                                 caller_.account, ":", name, " already exists"));
  }
  st_["aliases"][k] = {{"name", name}, {"target", (*key)["id"]}, {"created", Now()}};
  emu_.Save();
  Reply(json::object());
}

void AwsService::DeleteAlias(const json& body) {
  if (!Required(body, "AliasName", "aliasName")) return;
  std::string k = AliasKey(caller_.account, caller_.region, body.value("AliasName", ""));
  if (!st_["aliases"].contains(k)) {
    return AwsError(res_, 400, "NotFoundException",
                    "Alias " + body.value("AliasName", "") + " is not found.");
  }
  st_["aliases"].erase(k);
  emu_.Save();
  Reply(json::object());
}

void AwsService::ListAliases(const json& body) {
  std::string only;
  if (body.contains("KeyId")) {
    json* key = ResolveKey(body);
    if (!key) return;
    only = (*key)["id"];
  }
  json out = json::array();
  std::string prefix = absl::StrCat(caller_.account, ":", caller_.region, ":");
  for (const auto& [k, a] : st_["aliases"].items()) {
    if (!absl::StartsWith(k, prefix) || (!only.empty() && a["target"] != only)) continue;
    out.push_back({{"AliasName", a["name"]},
                   {"AliasArn", absl::StrCat("arn:aws:kms:", caller_.region, ":", caller_.account,
                                             ":", a["name"].get<std::string>())},
                   {"TargetKeyId", a["target"]},
                   {"CreationDate", a["created"]}});
  }
  Reply({{"Aliases", out}, {"Truncated", false}});
}

void AwsService::SetEnabled(const json& body, bool enabled) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, enabled ? "kms:EnableKey" : "kms:DisableKey")) return;
  if ((*key)["state"] == kPendingDeletion) {
    return AwsError(res_, 400, "KMSInvalidStateException",
                    (*key)["arn"].get<std::string>() + " is pending deletion.");
  }
  (*key)["state"] = enabled ? "Enabled" : "Disabled";
  emu_.Save();
  Reply(json::object());
}

void AwsService::ScheduleKeyDeletion(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:ScheduleKeyDeletion")) return;
  int days = body.value("PendingWindowInDays", 30);
  if (days < 7 || days > 30) {
    return AwsError(res_, 400, "ValidationException",
                    "1 validation error detected: Value at 'pendingWindowInDays' failed to "
                    "satisfy constraint: Member must have value between 7 and 30");
  }
  if ((*key)["state"] == kPendingDeletion) {
    return AwsError(res_, 400, "KMSInvalidStateException",
                    (*key)["arn"].get<std::string>() + " is pending deletion.");
  }
  (*key)["state"] = kPendingDeletion;
  (*key)["deletion_date"] = Now() + int64_t{days} * 86400;
  (*key)["pending_window"] = days;
  emu_.Save();
  Reply({{"KeyId", (*key)["arn"]},
         {"DeletionDate", (*key)["deletion_date"]},
         {"KeyState", kPendingDeletion},
         {"PendingWindowInDays", days}});
}

void AwsService::CancelKeyDeletion(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:CancelKeyDeletion")) return;
  if ((*key)["state"] != kPendingDeletion) {
    return AwsError(res_, 400, "KMSInvalidStateException",
                    (*key)["arn"].get<std::string>() + " is not pending deletion.");
  }
  // As in AWS: a key taken out of pending deletion comes back disabled.
  (*key)["state"] = "Disabled";
  key->erase("deletion_date");
  key->erase("pending_window");
  emu_.Save();
  Reply({{"KeyId", (*key)["arn"]}});
}

void AwsService::SetRotation(const json& body, bool enabled) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, enabled ? "kms:EnableKeyRotation" : "kms:DisableKeyRotation"))
    return;
  if ((*key)["key_spec"] != "SYMMETRIC_DEFAULT") {
    return AwsError(res_, 400, "UnsupportedOperationException",
                    (*key)["arn"].get<std::string>() + " key rotation needs a symmetric key.");
  }
  if (!Usable(*key)) return;
  int period = body.value("RotationPeriodInDays", 365);
  if (period < 90 || period > 2560) {
    return AwsError(res_, 400, "ValidationException",
                    "1 validation error detected: Value at 'rotationPeriodInDays' failed to "
                    "satisfy constraint: Member must have value between 90 and 2560");
  }
  (*key)["rotation_enabled"] = enabled;
  if (enabled) (*key)["rotation_period"] = period;
  emu_.Save();
  Reply(json::object());
}

void AwsService::GetKeyRotationStatus(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:GetKeyRotationStatus")) return;
  json out = {{"KeyId", (*key)["arn"]}, {"KeyRotationEnabled", (*key)["rotation_enabled"]}};
  if ((*key)["rotation_enabled"].get<bool>()) {
    int64_t period = (*key)["rotation_period"];
    out["RotationPeriodInDays"] = period;
    out["NextRotationDate"] = (*key)["created"].get<int64_t>() + period * 86400;
  }
  Reply(out);
}

void AwsService::RotateKeyOnDemand(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:RotateKeyOnDemand")) return;
  if ((*key)["key_spec"] != "SYMMETRIC_DEFAULT") {
    return AwsError(
        res_, 400, "UnsupportedOperationException",
        (*key)["arn"].get<std::string>() + " on-demand rotation needs a symmetric key.");
  }
  if (!Usable(*key)) return;
  (*key)["versions"].push_back(RandomHex(32).value_or(""));
  (*key)["rotations"].push_back(
      {{"KeyId", (*key)["id"]}, {"RotationDate", Now()}, {"RotationType", "ON_DEMAND"}});
  emu_.Save();
  Reply({{"KeyId", (*key)["id"]}});
}

void AwsService::ListKeyRotations(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:ListKeyRotations")) return;
  Reply({{"Rotations", (*key)["rotations"]}, {"Truncated", false}});
}

void AwsService::PutKeyPolicy(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:PutKeyPolicy") || !Required(body, "Policy", "policy")) return;
  json policy;
  if (!AcceptablePolicy(body, &policy)) return;
  (*key)["policy"] = policy;
  emu_.Save();
  Reply(json::object());
}

bool AwsService::AcceptablePolicy(const json& body, json* out) {
  json policy = json::parse(body.value("Policy", ""), nullptr, false);
  if (absl::Status st = ValidatePolicy(policy); !st.ok()) {
    AwsError(res_, 400, "MalformedPolicyDocumentException", std::string(st.message()));
    return false;
  }
  if (!body.value("BypassPolicyLockoutSafetyCheck", false) &&
      EvaluateKeyPolicy(policy, caller_.arn, caller_.account, "kms:PutKeyPolicy") !=
          PolicyDecision::kAllow) {
    AwsError(res_, 400, "MalformedPolicyDocumentException",
             "The new key policy will not allow you to update the key policy in the future.");
    return false;
  }
  *out = std::move(policy);
  return true;
}

void AwsService::GetKeyPolicy(const json& body) {
  json* key = ResolveKey(body);
  if (!key || !Authorized(*key, "kms:GetKeyPolicy")) return;
  Reply({{"Policy", (*key)["policy"].dump()}, {"PolicyName", "default"}});
}

void AwsService::Serve(const std::string& op, const json& body) {
  if (op == "CreateKey") return CreateKey(body);
  if (op == "DescribeKey") return DescribeKey(body);
  if (op == "ListKeys") return ListKeys(body);
  if (op == "CreateAlias") return CreateAlias(body);
  if (op == "DeleteAlias") return DeleteAlias(body);
  if (op == "ListAliases") return ListAliases(body);
  if (op == "EnableKey") return SetEnabled(body, true);
  if (op == "DisableKey") return SetEnabled(body, false);
  if (op == "ScheduleKeyDeletion") return ScheduleKeyDeletion(body);
  if (op == "CancelKeyDeletion") return CancelKeyDeletion(body);
  if (op == "EnableKeyRotation") return SetRotation(body, true);
  if (op == "DisableKeyRotation") return SetRotation(body, false);
  if (op == "GetKeyRotationStatus") return GetKeyRotationStatus(body);
  if (op == "RotateKeyOnDemand") return RotateKeyOnDemand(body);
  if (op == "ListKeyRotations") return ListKeyRotations(body);
  if (op == "PutKeyPolicy") return PutKeyPolicy(body);
  if (op == "GetKeyPolicy") return GetKeyPolicy(body);
  if (op == "Encrypt") return Encrypt(body);
  if (op == "Decrypt") return Decrypt(body);
  if (op == "GenerateDataKey") return GenerateDataKey(body, true);
  if (op == "GenerateDataKeyWithoutPlaintext") return GenerateDataKey(body, false);
  if (op == "ReEncrypt") return ReEncrypt(body);
  AwsError(res_, 400, "UnknownOperationException", "");
}

}  // namespace keyward::emulator::aws
