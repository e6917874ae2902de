// Readers of AWS replies and shared files: well-formed input parses, anything else is a Status.
#include "kms/aws/aws_replies.h"

#include <gtest/gtest.h>

namespace keyward::aws {
namespace {

TEST(AwsRepliesTest, ErrorTypeLosesItsNamespaceAndMessageComesFromEitherCase) {
  AwsErrorBody e = ParseAwsError(
      R"({"__type":"com.amazonaws.kms#NotFoundException","message":"Key 'x' does not exist"})");
  EXPECT_EQ(e.type, "NotFoundException");
  EXPECT_EQ(e.message, "Key 'x' does not exist");
  e = ParseAwsError(R"({"__type":"AccessDeniedException","Message":"no"})");
  EXPECT_EQ(e.type, "AccessDeniedException");
  EXPECT_EQ(e.message, "no");
  e = ParseAwsError("<html>bad gateway</html>");
  EXPECT_EQ(e.type, "");
  EXPECT_EQ(ParseAwsError(R"({"__type":7})").type, "");
}

TEST(AwsRepliesTest, DescribeKey) {
  auto d = ParseDescribeKey(
      R"({"KeyMetadata":{"KeyId":"k","Arn":"arn:aws:kms:eu-west-1:111122223333:key/k",)"
      R"("Enabled":true,"KeyState":"Enabled","KeySpec":"SYMMETRIC_DEFAULT",)"
      R"("KeyUsage":"ENCRYPT_DECRYPT"}})");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->enabled);
  EXPECT_EQ(d->key_spec, "SYMMETRIC_DEFAULT");
  EXPECT_EQ(RegionOfArn(d->arn), "eu-west-1");
  // Older replies carry CustomerMasterKeySpec only.
  d = ParseDescribeKey(
      R"({"KeyMetadata":{"KeyId":"k","Arn":"a","Enabled":false,"KeyState":"Disabled",)"
      R"("CustomerMasterKeySpec":"RSA_2048"}})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->key_spec, "RSA_2048");
  EXPECT_FALSE(ParseDescribeKey(R"({"KeyMetadata":{"KeyId":7}})").ok());
  EXPECT_FALSE(ParseDescribeKey(R"({"KeyMetadata":{"KeyId":"k","Arn":"a","KeyState":"E",)"
                                R"("Enabled":"yes"}})")
                   .ok());
  EXPECT_FALSE(ParseDescribeKey("[]").ok());
}

TEST(AwsRepliesTest, EncryptAndDecryptReplies) {
  auto e = ParseEncryptReply(R"({"KeyId":"arn","CiphertextBlob":"AAEC"})");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ciphertext, std::string("\x00\x01\x02", 3));
  EXPECT_FALSE(ParseEncryptReply(R"({"KeyId":"arn","CiphertextBlob":"!!"})").ok());
  EXPECT_FALSE(ParseEncryptReply(R"({"KeyId":"arn"})").ok());
  auto d = ParseDecryptReply(R"({"KeyId":"arn","Plaintext":"aGVsbG8="})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->plaintext.view(), "hello");
  EXPECT_FALSE(ParseDecryptReply(R"({"KeyId":"arn","Plaintext":{"x":1}})").ok());
}

TEST(AwsRepliesTest, RegionOfArn) {
  EXPECT_EQ(RegionOfArn("arn:aws:kms:us-east-1:111122223333:key/abc"), "us-east-1");
  EXPECT_EQ(RegionOfArn("arn:aws-cn:kms:cn-north-1:111122223333:key/abc"), "cn-north-1");
  EXPECT_EQ(RegionOfArn("arn:aws:kms"), "");
  EXPECT_EQ(RegionOfArn("urn:aws:kms:us-east-1:1:key/a"), "");
}

TEST(AwsRepliesTest, IniAsTheSharedFilesWriteIt) {
  auto ini = ParseIni(
      "# comment\n[default]\naws_access_key_id = AKIA1\nAWS_Secret_Access_Key=s#1 ; note\n"
      "\n[profile dev]\r\naws_access_key_id=AKIA2\r\nkey_without_section_is_kept=1\n"
      "orphan\n[broken\nx=y\n");
  EXPECT_EQ(ini["default"]["aws_access_key_id"], "AKIA1");
  EXPECT_EQ(ini["default"]["aws_secret_access_key"], "s#1");
  EXPECT_EQ(ini["profile dev"]["aws_access_key_id"], "AKIA2");
  EXPECT_EQ(ini.count("broken"), 0u);
}

TEST(AwsRepliesTest, TemporaryCredentials) {
  auto sts = ParseStsCredentials(
      "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
      "<SessionToken>tok</SessionToken><SecretAccessKey>sec</SecretAccessKey>"
      "<Expiration>2030-01-01T00:00:00Z</Expiration><AccessKeyId>ASIA1</AccessKeyId>"
      "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>");
  ASSERT_TRUE(sts.ok()) << sts.status();
  EXPECT_EQ(sts->access_key_id, "ASIA1");
  EXPECT_EQ(sts->expires_at, 1893456000);
  EXPECT_FALSE(ParseStsCredentials("<Credentials><AccessKeyId>A</AccessKeyId>").ok());
  auto imds = ParseImdsCredentials(
      R"({"Code":"Success","AccessKeyId":"ASIA2","SecretAccessKey":"s","Token":"t",)"
      R"("Expiration":"2030-01-01T00:00:00.123Z"})");
  ASSERT_TRUE(imds.ok()) << imds.status();
  EXPECT_EQ(imds->session_token, "t");
  EXPECT_FALSE(ParseImdsCredentials(R"({"Code":"Failure"})").ok());
  EXPECT_FALSE(ParseIso8601("2030-13-01T00:00:00Z").ok());
  EXPECT_FALSE(ParseIso8601("yesterday").ok());
}

TEST(AwsRepliesTest, CallerIdentityNamesTheRoleOfAnAssumedRoleSession) {
  EXPECT_EQ(*ParseCallerIdentityArn("<GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/"
                                    "ops</Arn></GetCallerIdentityResult>"),
            "arn:aws:iam::111122223333:user/ops");
  EXPECT_EQ(
      *ParseCallerIdentityArn("<Arn>arn:aws:sts::111122223333:assumed-role/keyward/pod-7</Arn>"),
      "arn:aws:iam::111122223333:role/keyward");
  EXPECT_FALSE(ParseCallerIdentityArn("<Arn>arn:aws:sts::1:assumed-role/no-session</Arn>").ok());
  EXPECT_FALSE(ParseCallerIdentityArn("<Account>1</Account>").ok());
}

}  // namespace
}  // namespace keyward::aws
