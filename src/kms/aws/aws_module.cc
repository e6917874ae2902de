#include "kms/aws/aws_module.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "kms/aws/aws_serve.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

json AwsKeyPolicy(const ServiceIdentity& id) {
  return {
      {"Version", "2012-10-17"},
      {"Id", "keyward-cmek"},
      {"Statement", json::array({
                        {{"Sid", aws::kKeywardPolicySid},
                         {"Effect", "Allow"},
                         {"Principal", {{"AWS", id.aws_principal_arn}}},
                         {"Action", json::array({"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
                                                 "kms:GenerateDataKey*", "kms:DescribeKey"})},
                         {"Resource", "*"}},
                    })},
  };
}

// keyward's principal, said to be a placeholder where it is one, so nobody grants a role to a
// principal that does not exist and then wonders why the test fails.
json ServiceIdentityJson(const ServiceIdentity& id) {
  json out = {{"aws_principal_arn", id.aws_principal_arn}, {"placeholder", id.aws_placeholder}};
  if (id.aws_placeholder) {
    out["warning"] =
        "this keyward server has no AWS identity configured: the principal ARN shown is a "
        "placeholder keyward generated, with nothing real behind it; key tests will fail until "
        "the server runs with a real identity (see keyward serve --help)";
  }
  return out;
}

class AwsKmsModule : public KmsProviderModule {
 public:
  std::string name() const override { return "aws-kms"; }
  std::string display_name() const override { return "AWS KMS"; }
  std::string cloud() const override { return "aws"; }
  std::string legacy_field() const override { return "aws"; }

  std::vector<KmsConfigField> config_fields() const override {
    return {{"key_arn", "string", true,
             "the symmetric KMS key's ARN, in the key's region "
             "(arn:aws:kms:<region>:<account>:key/<key-id>)",
             ""}};
  }

  absl::StatusOr<KmsKeySettings> Validate(const std::string& region, const json& cfg,
                                          const std::string& prefix) const override {
    static const std::regex kArn(
        "^arn:aws[a-z-]{0,16}:kms:([a-z0-9-]{1,40}):([0-9]{12}):key/[0-9a-fA-F-]{1,64}$");
    std::string arn = cfg.value("key_arn", "");
    std::smatch m;
    if (!std::regex_match(arn, m, kArn)) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix,
          "key_arn must be a KMS key ARN like arn:aws:kms:us-east-1:111122223333:key/<key-id>"));
    }
    if (m[1].str() != region) {
      return absl::InvalidArgumentError(absl::StrCat("the key ARN is in region ", m[1].str(),
                                                     " but the key is for region ", region,
                                                     "; use a key created in ", region));
    }
    return KmsKeySettings{arn, json{{"key_arn", arn}}};
  }

  // Before a key exists: the principal to grant and the policy statement to paste.
  json ServiceSetup(const ServiceIdentity& id) const override {
    return {{"service_identity", ServiceIdentityJson(id)}, {"key_policy", AwsKeyPolicy(id)}};
  }

  json Instructions(const KmsKeyRef& key, const ServiceIdentity& id) const override {
    json policy = AwsKeyPolicy(id);
    json steps = json::array({absl::StrCat("Create a symmetric KMS key in ", key.region,
                                           " (or use the one whose ARN you entered)"),
                              "Add the statement in key_policy to the key's policy",
                              absl::StrCat("Then run: keyward key test --project ", key.project_id,
                                           " ", key.record_id)});
    json out = {
        {"service_identity", ServiceIdentityJson(id)},
        {"key_arn", key.key_name},
        {"key_policy", policy},
        {"steps", steps},
    };
    std::string text =
        absl::StrCat("key ARN: ", key.key_name, "\nadd this statement to the key policy:\n",
                     policy.dump(2), "\n");
    for (const auto& step : steps) absl::StrAppend(&text, "  - ", step.get<std::string>(), "\n");
    out["text"] = text;
    return out;
  }

  std::vector<KmsKeyCheck> DescriptionChecks(const KmsKeyRef& key,
                                             const KeyDescription& d) const override {
    std::vector<KmsKeyCheck> checks;
    checks.push_back(
        {"enabled", d.enabled,
         d.enabled ? "key is enabled"
                   : absl::StrCat("key ", key.key_name,
                                  " is not enabled in AWS KMS; run aws kms enable-key --region ",
                                  key.region, " --key-id ", key.key_name,
                                  " (after aws kms cancel-key-deletion if it is pending deletion) "
                                  "and test again")});
    checks.push_back({"key_operations", d.can_wrap,
                      d.can_wrap ? "symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)"
                                 : absl::StrCat("the key is not a symmetric encryption key "
                                                "(KeySpec SYMMETRIC_DEFAULT, KeyUsage "
                                                "ENCRYPT_DECRYPT); create one with aws kms "
                                                "create-key --region ",
                                                key.region, " and use its ARN")});
    if (!d.region.has_value()) {
      checks.push_back({"region", true, "region not verified (DescribeKey named no ARN)"});
    } else {
      bool same = *d.region == key.region;
      checks.push_back({"region", same,
                        same ? absl::StrCat("key ARN region ", *d.region, " matches")
                             : absl::StrCat("the key ARN is in region ", *d.region,
                                            " but this key record is for ", key.region,
                                            "; use a key created in ", key.region)});
    }
    return checks;
  }

  std::string DescribeHint(const KmsKeyRef& key, const absl::Status& st) const override {
    if (absl::IsNotFound(st)) {
      return absl::StrCat(" (check it: aws kms describe-key --region ", key.region, " --key-id ",
                          key.key_name, ")");
    }
    if (absl::IsPermissionDenied(st)) return " (add the key policy statement shown)";
    return KmsProviderModule::DescribeHint(key, st);
  }
  std::string wrap_operation() const override { return "Encrypt"; }
  std::string unwrap_operation() const override { return "Decrypt"; }

  std::string NotConfiguredMessage() const override {
    return "this keyward server has no AWS KMS client configured; start it with AWS credentials "
           "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or web identity)";
  }

  std::vector<KmsServeFlag> serve_flags() const override { return aws::AwsServeFlags(); }
  std::string serve_help_note() const override { return aws::AwsServeNote(); }
  absl::StatusOr<std::shared_ptr<const KmsServeSettings>> LoadServeSettings(
      const KmsFlagValues& flags, json& stored, ServiceIdentity& identity) const override {
    return aws::LoadAwsServeSettings(flags, stored, identity);
  }
};

class AwsKmsClient : public KmsProviderClient {
 public:
  explicit AwsKmsClient(const AwsKmsSettings& settings)
      : kms_(settings.kms),
        http_(std::make_shared<HttpClient>(settings.http)),
        credentials_(std::make_shared<aws::AwsCredentialSource>(settings.credentials, http_)) {}

  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> New(const KmsKeyRef& key) override {
    ASSIGN_OR_RETURN(std::unique_ptr<aws::AwsKmsProvider> p,
                     aws::AwsKmsProvider::New(key, kms_, credentials_, http_));
    return std::shared_ptr<MasterKeyProvider>(std::move(p));
  }

 private:
  aws::AwsKmsConfig kms_;
  std::shared_ptr<HttpClient> http_;
  std::shared_ptr<aws::AwsCredentialSource> credentials_;
};

}  // namespace

std::unique_ptr<KmsProviderModule> NewAwsKmsModule() { return std::make_unique<AwsKmsModule>(); }

std::shared_ptr<KmsProviderClient> NewAwsKmsClient(const AwsKmsSettings& settings) {
  return std::make_shared<AwsKmsClient>(settings);
}

}  // namespace keyward
