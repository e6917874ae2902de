#include "kms/azure/azure_replies.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <functional>
#include <string>
#include <vector>

#include "util/base64.h"

namespace keyward {
namespace {

constexpr char kReplyKid[] =
    "https://kv-x.vault.azure.net/keys/tidb-cmek/0123456789abcdef0123456789abcdef";

std::string Bundle(const std::string& key, const std::string& attributes) {
  return R"({"key":)" + key + R"(,"attributes":)" + attributes + "}";
}

const std::string kGoodKey =
    std::string(R"({"kid":")") + kReplyKid +
    R"(","kty":"RSA","key_ops":["wrapKey","unwrapKey"],"n":"AQAB","e":"AQAB"})";
const std::string kGoodAttrs =
    R"({"enabled":true,"nbf":1700000000,"exp":1900000000,"created":1,"recoveryLevel":"Recoverable"})";

// Every reader, for the "never throws, always a status" sweeps.
std::vector<std::function<bool(std::string_view)>> AllReaders() {
  return {
      [](std::string_view b) { return ParseKeyBundle(b).ok(); },
      [](std::string_view b) { return ParseWrapResult(b).ok(); },
      [](std::string_view b) { return ParseUnwrapResult(b).ok(); },
      [](std::string_view b) { return ParseAzureError(b).ok(); },
      [](std::string_view b) { return ParseTokenReply(b).ok(); },
      [](std::string_view b) { return ParseEntraError(b).ok(); },
      [](std::string_view b) { return ParseArmVault(b).ok(); },
  };
}

TEST(AzureRepliesTest, KeyBundleWellFormed) {
  auto b = ParseKeyBundle(Bundle(kGoodKey, kGoodAttrs));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->kid, kReplyKid);
  EXPECT_EQ(b->version, "0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(b->enabled);
  EXPECT_EQ(b->not_before, 1700000000);
  EXPECT_EQ(b->expires_at, 1900000000);
  EXPECT_EQ(b->recovery_level, "Recoverable");
  ASSERT_TRUE(b->key_ops.has_value());
  EXPECT_EQ(*b->key_ops, (std::vector<std::string>{"wrapKey", "unwrapKey"}));
}

TEST(AzureRepliesTest, KeyBundleOptionalFieldsAbsentOrNull) {
  std::string key = std::string(R"({"kid":")") + kReplyKid + R"(","key_ops":null})";
  auto b = ParseKeyBundle(Bundle(key, R"({"enabled":false,"nbf":null})"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->enabled);
  EXPECT_FALSE(b->not_before.has_value());
  EXPECT_FALSE(b->expires_at.has_value());
  EXPECT_FALSE(b->recovery_level.has_value());
  EXPECT_FALSE(b->key_ops.has_value());
}

TEST(AzureRepliesTest, KeyBundleWrongTypesMissingFieldsAndNulls) {
  const std::string kid = std::string("\"") + kReplyKid + "\"";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "the reply is not JSON"},
      {"[]", "not a JSON object"},
      {"null", "not a JSON object"},
      {R"({"attributes":{"enabled":true}})", "'key' is missing"},
      {Bundle("null", kGoodAttrs), "'key' is missing"},
      {Bundle("[1]", kGoodAttrs), "'key' is not an object"},
      {Bundle("{}", kGoodAttrs), "'key.kid' is missing"},
      {Bundle(R"({"kid":42})", kGoodAttrs), "'key.kid' is not a string"},
      {Bundle(R"({"kid":null})", kGoodAttrs), "'key.kid' is missing"},
      {Bundle(R"({"kid":"https://kv/keys/k"})", kGoodAttrs), "not a versioned"},
      {Bundle(R"({"kid":"http://kv/keys/k/abc"})", kGoodAttrs), "not a versioned"},
      {Bundle(R"({"kid":"https://kv/keys/k/xyz"})", kGoodAttrs), "not a versioned"},
      {Bundle(R"({"kid":)" + kid + R"(,"key_ops":"wrapKey"})", kGoodAttrs),
       "'key.key_ops' is not an array"},
      {Bundle(R"({"kid":)" + kid + R"(,"key_ops":["wrapKey",7]})", kGoodAttrs),
       "not an array of strings"},
      {Bundle(R"({"kid":)" + kid + R"(,"key_ops":[null]})", kGoodAttrs), "array of strings"},
      {R"({"key":{"kid":)" + kid + "}}", "'attributes' is missing"},
      {Bundle(kGoodKey, "true"), "'attributes' is not an object"},
      {Bundle(kGoodKey, "{}"), "'attributes.enabled' is missing"},
      {Bundle(kGoodKey, R"({"enabled":"true"})"), "'attributes.enabled' is not a boolean"},
      {Bundle(kGoodKey, R"({"enabled":1})"), "not a boolean"},
      {Bundle(kGoodKey, R"({"enabled":true,"exp":"1900000000"})"),
       "'attributes.exp' is not a number"},
      {Bundle(kGoodKey, R"({"enabled":true,"exp":{}})"), "not a number"},
      {Bundle(kGoodKey, R"({"enabled":true,"nbf":-5})"), "'attributes.nbf' is not a whole number"},
      {Bundle(kGoodKey, R"({"enabled":true,"nbf":1.5})"), "not a whole number"},
      {Bundle(kGoodKey, R"({"enabled":true,"exp":1e400})"), "not JSON"},  // beyond a double
      {Bundle(kGoodKey, R"({"enabled":true,"exp":1e300})"), "not a whole number"},
      {Bundle(kGoodKey, R"({"enabled":true,"exp":18446744073709551615})"), "not a whole number"},
      {Bundle(kGoodKey, R"({"enabled":true,"exp":99999999999999999999999})"), "not a whole number"},
      {Bundle(kGoodKey, R"({"enabled":true,"recoveryLevel":["Recoverable"]})"),
       "'attributes.recoveryLevel' is not a string"},
      {Bundle(kGoodKey, kGoodAttrs).substr(0, 40), "not JSON"},
  };
  for (const auto& [body, want] : bad) {
    auto b = ParseKeyBundle(body);
    ASSERT_FALSE(b.ok()) << body;
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_NE(b.status().message().find(want), std::string_view::npos)
        << body << " -> " << b.status();
  }
}

TEST(AzureRepliesTest, KeyBundleAcceptsIntegralFloatTimes) {
  auto b = ParseKeyBundle(Bundle(kGoodKey, R"({"enabled":true,"exp":1.9e9})"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->expires_at, 1900000000);
}

TEST(AzureRepliesTest, WrapResult) {
  std::string value = Base64UrlEncode(std::string(384, '\x07'));
  auto w =
      ParseWrapResult(std::string(R"({"kid":")") + kReplyKid + R"(","value":")" + value + "\"}");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->kid, kReplyKid);
  EXPECT_EQ(w->version, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(w->ciphertext, std::string(384, '\x07'));

  const std::string kid = std::string("\"") + kReplyKid + "\"";
  for (const std::string& body : {
           std::string(R"({"value":"AAAA"})"),
           R"({"kid":)" + kid + "}",
           R"({"kid":)" + kid + R"(,"value":null})",
           R"({"kid":)" + kid + R"(,"value":12})",
           R"({"kid":)" + kid + R"(,"value":"not base64!"})",
           R"({"kid":)" + kid + R"(,"value":""})",
           std::string(R"({"kid":["x"],"value":"AAAA"})"),
           std::string(R"({"kid":"https://kv/keys/k","value":"AAAA"})"),
           std::string(R"({"kid":"https://kv/keys/k/00","value":)"),
       }) {
    EXPECT_FALSE(ParseWrapResult(body).ok()) << body;
  }
}

TEST(AzureRepliesTest, UnwrapResultDecodesIntoSecretBytes) {
  std::string key(32, '\x2a');
  auto u = ParseUnwrapResult(std::string(R"({"kid":")") + kReplyKid + R"(","value":")" +
                             Base64UrlEncode(key) + "\"}");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->kid, kReplyKid);
  EXPECT_EQ(u->plaintext.view(), key);
  // kid is optional on unwrap; value is not.
  auto no_kid = ParseUnwrapResult(R"({"value":")" + Base64UrlEncode(key) + "\"}");
  ASSERT_TRUE(no_kid.ok()) << no_kid.status();
  EXPECT_EQ(no_kid->kid, "");
  for (const std::string& body : {
           std::string(R"({"kid":"x"})"),
           std::string(R"({"value":null})"),
           std::string(R"({"value":{"a":1}})"),
           std::string(R"({"value":"%%%"})"),
           std::string(R"({"value":""})"),
           std::string(R"({"kid":7,"value":"AAAA"})"),
           std::string(R"({"value":"AAAA")"),
           std::string("garbage"),
       }) {
    auto r = ParseUnwrapResult(body);
    EXPECT_FALSE(r.ok()) << body;
  }
}

TEST(AzureRepliesTest, UnwrapErrorsNeverQuoteTheValue) {
  auto r = ParseUnwrapResult(R"({"kid":5,"value":"c2VjcmV0LWtleS1ieXRlcw"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("c2VjcmV0"), std::string_view::npos);
}

TEST(AzureRepliesTest, AzureErrorBody) {
  auto e = ParseAzureError(
      R"({"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}})");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->code, "Forbidden");
  EXPECT_EQ(e->inner_code, "KeyDisabled");
  EXPECT_EQ(e->message, "Operation unwrapKey is not allowed on a disabled key.");
  auto minimal = ParseAzureError(R"({"error":{"code":"KeyNotFound","innererror":null}})");
  ASSERT_TRUE(minimal.ok()) << minimal.status();
  EXPECT_EQ(minimal->inner_code, "");
  for (const char* body :
       {"", "<html>502 Bad Gateway</html>", R"({"error":"boom"})", R"({"error":null})",
        R"({"error":{"code":404}})", R"({"error":{"message":["x"]}})",
        R"({"error":{"innererror":"x"}})", R"({"error":{"innererror":{"code":false}}})"}) {
    EXPECT_FALSE(ParseAzureError(body).ok()) << body;
  }
}

TEST(AzureRepliesTest, TokenReplyFromEntraAndImds) {
  auto entra = ParseTokenReply(
      R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.eyJ1.c2ln"})");
  ASSERT_TRUE(entra.ok()) << entra.status();
  EXPECT_EQ(entra->access_token, "eyJ0.eyJ1.c2ln");
  EXPECT_EQ(entra->token_type, "Bearer");
  EXPECT_EQ(entra->expires_in, 3599);
  EXPECT_FALSE(entra->expires_on.has_value());
  auto imds = ParseTokenReply(
      R"({"access_token":"eyJ0.eyJ1.c2ln","expires_in":"3599","expires_on":"1700003599","resource":"https://vault.azure.net","token_type":"Bearer"})");
  ASSERT_TRUE(imds.ok()) << imds.status();
  EXPECT_EQ(imds->expires_in, 3599);
  EXPECT_EQ(imds->expires_on, 1700003599);
  for (const char* body : {
           R"({"expires_in":3599})",
           R"({"access_token":null,"expires_in":3599})",
           R"({"access_token":123,"expires_in":3599})",
           R"({"access_token":"","expires_in":3599})",
           R"({"access_token":"a b","expires_in":3599})",
           R"({"access_token":"abc\r\nX-Injected: 1","expires_in":3599})",
           R"({"access_token":"abc"})",
           R"({"access_token":"abc","expires_in":{}})",
           R"({"access_token":"abc","expires_in":"soon"})",
           R"({"access_token":"abc","expires_in":-1})",
           R"({"access_token":"abc","expires_in":1e300})",
           R"({"access_token":"abc","expires_in":"99999999999999999999"})",
           R"({"access_token":"abc","expires_in":3599,"expires_on":[1]})",
           R"({"access_token":"abc","expires_in":3599,"token_type":1})",
           R"({"access_token":"abc","expires_in":35)",
       }) {
    auto r = ParseTokenReply(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().message().find("abc"), std::string_view::npos) << r.status();
  }
}

TEST(AzureRepliesTest, EntraError) {
  auto e = ParseEntraError(
      R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]})");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->error, "invalid_client");
  EXPECT_EQ(e->error_description, "AADSTS7000215: Invalid client secret provided.");
  EXPECT_FALSE(ParseEntraError(R"({"error":{"code":"x"}})").ok());
  EXPECT_FALSE(ParseEntraError(R"({"error_description":42})").ok());
  EXPECT_FALSE(ParseEntraError("Service Unavailable").ok());
}

TEST(AzureRepliesTest, ArmVault) {
  auto v = ParseArmVault(
      R"({"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv","location":"EastUS","properties":{"enablePurgeProtection":true}})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->location, "eastus");
  EXPECT_EQ(v->purge_protection, true);
  // enablePurgeProtection is absent (not false) on vaults that never had it set.
  auto bare = ParseArmVault(R"({"location":"westus","properties":{}})");
  ASSERT_TRUE(bare.ok());
  EXPECT_FALSE(bare->purge_protection.has_value());
  for (const char* body : {R"({"location":1})", R"({"properties":[]})",
                           R"({"properties":{"enablePurgeProtection":"true"}})", "[]", "{"}) {
    EXPECT_FALSE(ParseArmVault(body).ok()) << body;
  }
}

TEST(AzureRepliesTest, KeyVersionFromKid) {
  EXPECT_EQ(KeyVersionFromKid(kReplyKid), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(KeyVersionFromKid("https://h/keys/n/ABC"), "ABC");
  for (const char* kid : {"", "https://", "https://h/keys/n", "https://h/keys/n/",
                          "https:///keys/n/a", "https://h/secrets/n/a", "https://h/keys//a",
                          "https://h/keys/n/a/b", "https://h/keys/n/zz", "ftp://h/keys/n/a"}) {
    EXPECT_EQ(KeyVersionFromKid(kid), "") << kid;
  }
  EXPECT_EQ(KeyVersionFromKid("https://h/keys/n/" + std::string(129, 'a')), "");
  // Long input costs linear time and no stack (the regex this replaced recursed per character).
  EXPECT_EQ(KeyVersionFromKid("https://" + std::string(1 << 20, 'h') + "/keys/n/a"), "a");
}

TEST(AzureRepliesTest, ExcerptIsValidUtf8AndBounded) {
  EXPECT_EQ(ExcerptForMessage("plain text"), "plain text");
  EXPECT_EQ(ExcerptForMessage("line\r\nbreak\x01"), "line  break ");
  EXPECT_EQ(ExcerptForMessage("caf\xc3\xa9", 4), "caf");  // never half a character
  EXPECT_EQ(ExcerptForMessage("caf\xc3\xa9", 5), "caf\xc3\xa9");
  EXPECT_EQ(ExcerptForMessage("\xff\xc3(\xed\xa0\x80"),
            "?"
            "?(???");  // invalid, surrogate
  EXPECT_EQ(ExcerptForMessage(std::string(1000, 'x')).size(), 200u);
}

// Runs `fn` on a thread with a 256 KiB stack, a fraction of a server thread's.
void RunOnSmallStack(const std::function<void()>& fn) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  pthread_t thread;
  auto body = [](void* arg) -> void* {
    (*static_cast<const std::function<void()>*>(arg))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, body, const_cast<std::function<void()>*>(&fn)), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

TEST(AzureRepliesTest, NoReaderThrowsOnHostileInput) {
  std::vector<std::string> inputs = {
      "",
      " ",
      "{",
      "}",
      "nul",
      "\"\\ud800\"",
      "{\"key\":\"\xff\"}",
      // Deep nesting, read on a 256 KiB stack (below): a reader that recursed once per level
      // would overflow it. 100,000 levels on the main stack took minutes under ASan.
      std::string(5000, '['),
      std::string(5000, '[') + std::string(5000, ']'),
      "{\"a\":" + std::string(5000, '{'),
      "1e999999",
      "-1e999999",
      "123456789012345678901234567890",
      std::string("{\"value\":\"AAAA\"}\0trailing", 24),
      R"({"key":{"kid":{"kid":{}}},"attributes":{"enabled":{"enabled":null}}})",
      R"({"error":{"innererror":{"innererror":{"code":null}}}})",
      R"({"access_token":["a"],"expires_in":[],"expires_on":{}})",
      R"({"location":null,"properties":null})",
  };
  RunOnSmallStack([&] {
    for (const auto& read : AllReaders()) {
      for (const auto& in : inputs) {
        EXPECT_NO_THROW((void)read(in)) << in.substr(0, 40);
      }
    }
  });
}

}  // namespace
}  // namespace keyward
