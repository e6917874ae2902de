// SigV4 against AWS's published vectors: the Signature Version 4 test suite (credential
// AKIDEXAMPLE, 20150830T123600Z, us-east-1, service "service", host example.amazonaws.com), the
// IAM ListUsers example from AWS's SigV4 documentation, and a KMS Encrypt request checked against
// botocore. Expected values are copied from those publications, never computed here.
#include "kms/aws/sigv4.h"

#include <gtest/gtest.h>

namespace keyward::aws {
namespace {

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr int64_t kSuiteTime = 1440938160;  // 2015-08-30T12:36:00Z
constexpr char kSuiteScope[] = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

std::string SignedAuthorization(SigV4Request r, const std::string& token = "",
                                const std::string& service = "service", int64_t t = kSuiteTime) {
  SigV4Credentials c{"AKIDEXAMPLE", kSecret, token};
  EXPECT_TRUE(Sign(r, c, "us-east-1", service, t).ok());
  for (const auto& [name, value] : r.headers) {
    if (name == "Authorization") return value;
  }
  return "";
}

SigV4Request Suite(const std::string& method, const std::string& query = "") {
  SigV4Request r;
  r.method = method;
  r.query = query;
  r.headers = {{"Host", "example.amazonaws.com"}};
  return r;
}

TEST(SigV4Test, AmzDateRoundTrips) {
  EXPECT_EQ(AmzDate(kSuiteTime), "20150830T123600Z");
  EXPECT_EQ(*ParseAmzDate("20150830T123600Z"), kSuiteTime);
  EXPECT_FALSE(ParseAmzDate("2015-08-30T12:36:00Z").ok());
  EXPECT_FALSE(ParseAmzDate("20151330T123600Z").ok());
  EXPECT_FALSE(ParseAmzDate("2015083OT123600Z").ok());
}

TEST(SigV4Test, SuiteGetVanillaCanonicalRequestAndStringToSign) {
  SigV4Request r = Suite("GET");
  r.headers.emplace_back("X-Amz-Date", "20150830T123600Z");
  std::string creq = CanonicalRequest(r, {"host", "x-amz-date"});
  EXPECT_EQ(creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(StringToSign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", creq),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

TEST(SigV4Test, SuiteGetVanilla) {
  EXPECT_EQ(SignedAuthorization(Suite("GET")),
            std::string("AWS4-HMAC-SHA256 ") + kSuiteScope +
                ", SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4Test, SuitePostVanilla) {
  EXPECT_EQ(SignedAuthorization(Suite("POST")),
            std::string("AWS4-HMAC-SHA256 ") + kSuiteScope +
                ", SignedHeaders=host;x-amz-date, "
                "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4Test, SuiteGetVanillaQueryOrderKeyCase) {
  SigV4Request r = Suite("GET", "Param2=value2&Param1=value1");
  EXPECT_EQ(CanonicalQueryString(r.query), "Param1=value1&Param2=value2");
  EXPECT_EQ(SignedAuthorization(r),
            std::string("AWS4-HMAC-SHA256 ") + kSuiteScope +
                ", SignedHeaders=host;x-amz-date, "
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4Test, SuitePostHeaderValueCase) {
  SigV4Request r = Suite("POST");
  r.headers.emplace_back("My-Header1", "VALUE1");
  EXPECT_EQ(SignedAuthorization(r),
            std::string("AWS4-HMAC-SHA256 ") + kSuiteScope +
                ", SignedHeaders=host;my-header1;x-amz-date, "
                "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d");
}

TEST(SigV4Test, SuiteGetHeaderValueTrim) {
  SigV4Request r = Suite("GET");
  r.headers.emplace_back("My-Header1", " value1");
  r.headers.emplace_back("My-Header2", "\"a   b   c\"");
  EXPECT_EQ(SignedAuthorization(r),
            std::string("AWS4-HMAC-SHA256 ") + kSuiteScope +
                ", SignedHeaders=host;my-header1;my-header2;x-amz-date, "
                "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST(SigV4Test, SuitePostStsHeaderBeforeSignsTheSessionToken) {
  const std::string token =
      "AQoDYXdzEPT//////////"
      "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"
      "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7"
      "WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm"
      "8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
  EXPECT_EQ(SignedAuthorization(Suite("POST"), token),
            std::string("AWS4-HMAC-SHA256 ") + kSuiteScope +
                ", SignedHeaders=host;x-amz-date;x-amz-security-token, "
                "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

TEST(SigV4Test, IamListUsersExample) {
  SigV4Request r;
  r.method = "GET";
  r.query = "Action=ListUsers&Version=2010-05-08";
  r.headers = {{"Host", "iam.amazonaws.com"},
               {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  EXPECT_EQ(SignedAuthorization(r, "", "iam"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

TEST(SigV4Test, KmsEncryptCheckedAgainstBotocore) {
  SigV4Request r;
  r.headers = {{"Content-Type", "application/x-amz-json-1.1"},
               {"Host", "kms.us-east-1.amazonaws.com"},
               {"X-Amz-Target", "TrentService.Encrypt"}};
  r.body = R"({"KeyId":"alias/test","Plaintext":"aGVsbG8="})";
  std::string auth = SignedAuthorization(r, "", "kms", 1704067200);  // 20240101T000000Z
  EXPECT_EQ(auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/kms/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
            "Signature=ed85b1751cf0cabc6246e7d1b9d6ee8457f32146312fd99734680d68c012a8ec");
}

TEST(SigV4Test, VerifierRebuildsTheSignatureFromTheParsedHeader) {
  SigV4Request r = Suite("POST");
  r.body = "{}";
  std::string auth = SignedAuthorization(r);
  r.headers.emplace_back("X-Amz-Date", "20150830T123600Z");
  auto parsed = ParseAuthorization(auth);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(parsed->scope(), "20150830/us-east-1/service/aws4_request");
  std::string sts = StringToSign("20150830T123600Z", parsed->scope(),
                                 CanonicalRequest(r, parsed->signed_headers));
  std::string good = Signature(kSecret, parsed->date, parsed->region, parsed->service, sts);
  EXPECT_TRUE(SignaturesEqual(good, parsed->signature));
  // A changed body, or another secret, gives another signature.
  r.body = "{ }";
  sts = StringToSign("20150830T123600Z", parsed->scope(),
                     CanonicalRequest(r, parsed->signed_headers));
  EXPECT_FALSE(SignaturesEqual(
      Signature(kSecret, parsed->date, parsed->region, parsed->service, sts), parsed->signature));
  EXPECT_FALSE(SignaturesEqual(
      Signature("other", parsed->date, parsed->region, parsed->service, sts), parsed->signature));
}

TEST(SigV4Test, MalformedAuthorizationHeadersAreRefused) {
  EXPECT_FALSE(ParseAuthorization("Bearer x").ok());
  EXPECT_FALSE(ParseAuthorization("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab").ok());
  EXPECT_FALSE(
      ParseAuthorization("AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1, SignedHeaders=host, "
                         "Signature=ab")
          .ok());
  EXPECT_FALSE(
      ParseAuthorization(
          "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/kms/aws4_request, Signature=ab")
          .ok());
}

TEST(SigV4Test, SigningNeedsAKeyAndAHost) {
  SigV4Request r = Suite("POST");
  EXPECT_FALSE(Sign(r, SigV4Credentials{}, "us-east-1", "kms", kSuiteTime).ok());
  SigV4Request no_host;
  EXPECT_FALSE(
      Sign(no_host, SigV4Credentials{"AK", "secret", ""}, "us-east-1", "kms", kSuiteTime).ok());
}

}  // namespace
}  // namespace keyward::aws
