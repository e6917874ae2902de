// Arbitrary bytes as everything AWS-shaped keyward or its emulator reads: KMS replies and error
// bodies, shared credentials files, STS XML and IMDS JSON (the client); SigV4 Authorization
// headers, X-Amz-Date values, query strings, key policies and ciphertext blobs (the emulator).
// Every outcome must be a Status or a refusal, never an exception, a crash or a bad read.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "../tools/kms_emulator/aws_kms.h"
#include "kms/aws/aws_replies.h"
#include "kms/aws/sigv4.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  namespace a = keyward::aws;
  (void)a::ParseAwsError(body);
  (void)a::ParseDescribeKey(body);
  (void)a::ParseEncryptReply(body);
  (void)a::ParseDecryptReply(body);
  (void)a::RegionOfArn(body);
  (void)a::ParseIni(body);
  (void)a::ParseStsCredentials(body);
  (void)a::ParseImdsCredentials(body);
  (void)a::ParseIso8601(body);
  (void)a::ParseCallerIdentityArn(body);
  (void)a::ParseAuthorization(body);
  (void)a::ParseAmzDate(body);
  (void)a::CanonicalQueryString(body);
  namespace e = keyward::emulator::aws;
  std::string text(body);
  (void)e::ParseBlob(text);
  nlohmann::json policy = nlohmann::json::parse(text, nullptr, false);
  (void)e::ValidatePolicy(policy);
  (void)e::EvaluateKeyPolicy(policy, "arn:aws:iam::111122223333:user/x", "111122223333",
                             "kms:Decrypt");
  (void)e::WildcardMatch(text.substr(0, 64), "kms:GenerateDataKeyWithoutPlaintext");
  return 0;
}
