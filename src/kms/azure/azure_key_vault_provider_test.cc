// The provider against a fake HttpClient: replies keyward cannot read become Unavailable (never
// a crash), real service errors keep their definitive mapping, Describe reports the key's window.
#include "kms/azure/azure_key_vault_provider.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "crypto/random.h"
#include "util/base64.h"

namespace keyward {
namespace {

constexpr char kKid[] =
    "https://kv-x.vault.azure.net/keys/tidb-cmek-1/00112233445566778899aabbccddeeff";

// Answers by the first registered URL fragment the request contains; unknown URLs get a 404.
class FakeHttp : public HttpClient {
 public:
  FakeHttp() : HttpClient(HttpClientOptions{}) {}
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) const override {
    requests.push_back(request.method + " " + request.url);
    for (const auto& [fragment, response] : routes) {
      if (absl::StrContains(request.url, fragment)) return response;
    }
    return HttpResponse{404, {}, R"({"error":{"code":"NotFound"}})"};
  }
  void Route(const std::string& fragment, int status, std::string body) {
    for (auto& [f, r] : routes) {
      if (f == fragment) {
        r = HttpResponse{status, {}, std::move(body)};
        return;
      }
    }
    routes.push_back({fragment, HttpResponse{status, {}, std::move(body)}});
  }
  std::vector<std::pair<std::string, HttpResponse>> routes;
  mutable std::vector<std::string> requests;
};

class AzureProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    http_ = std::make_shared<FakeHttp>();
    http_->Route("/oauth2/v2.0/token", 200,
                 R"({"token_type":"Bearer","expires_in":3599,"access_token":"tok.en.sig"})");
    http_->Route("/keys/tidb-cmek-1/?", 200, KeyBundle(R"({"enabled":true})"));
    http_->Route("/providers/Microsoft.KeyVault/vaults/kv-x", 200,
                 R"({"location":"EastUS","properties":{"enablePurgeProtection":true}})");
    EntraIdentity id;
    id.tenant_id = "tenant-1";
    id.client_id = "app-1";
    id.client_secret = "s3cret";
    auto tokens = std::make_shared<EntraTokenSource>(id, http_);
    EncryptionKey key;
    key.provider = "azure-key-vault";
    key.region = "eastus";
    key.key_name = "tidb-cmek-1";
    key.config_json =
        R"({"key_vault_name":"kv-x","subscription_id":"sub-1","resource_group":"rg-1"})";
    AzureKeyVaultConfig config;
    config.app_name = "keyward-test";
    auto p = AzureKeyVaultProvider::New(key, config, tokens, http_);
    ASSERT_TRUE(p.ok()) << p.status();
    provider_ = std::move(*p);
  }

  static std::string KeyBundle(const std::string& attributes) {
    return std::string(R"({"key":{"kid":")") + kKid +
           R"(","kty":"RSA","key_ops":["wrapKey","unwrapKey"]},"attributes":)" + attributes + "}";
  }
  static WrappedKey Record() {
    return WrappedKey{"azure-key-vault", kKid, "00112233445566778899aabbccddeeff", "RSA-OAEP-256",
                      std::string(384, '\x01')};
  }

  std::shared_ptr<FakeHttp> http_;
  std::unique_ptr<AzureKeyVaultProvider> provider_;
};

TEST_F(AzureProviderTest, DescribeReportsWindowAndVaultFacts) {
  http_->Route(
      "/keys/tidb-cmek-1/?", 200,
      KeyBundle(
          R"({"enabled":true,"nbf":1600000000,"exp":1000,"recoveryLevel":"Recoverable+Purgeable"})"));
  auto d = provider_->Describe();
  ASSERT_TRUE(d.ok()) << d.status();  // an expired key is described; the caller judges it
  EXPECT_EQ(d->key_id, kKid);
  EXPECT_EQ(d->key_version, "00112233445566778899aabbccddeeff");
  EXPECT_TRUE(d->enabled);
  EXPECT_TRUE(d->can_wrap);
  EXPECT_EQ(d->not_before, 1600000000);
  EXPECT_EQ(d->expires_at, 1000);
  EXPECT_EQ(d->region, "eastus");
  EXPECT_EQ(d->purge_protection, true);  // ARM's answer wins over recoveryLevel
}

TEST_F(AzureProviderTest, KeyOpsMustNameBothWrapAndUnwrap) {
  const std::string attributes = R"({"enabled":true})";
  for (const auto& [ops, usable] : std::vector<std::pair<std::string, bool>>{
           {R"(,"key_ops":["wrapKey","unwrapKey","sign"])", true},
           {R"(,"key_ops":["wrapKey"])", false},
           {R"(,"key_ops":[])", false},
           {"", false}}) {  // no key_ops at all: not taken as permission
    http_->Route("/keys/tidb-cmek-1/?", 200,
                 std::string(R"({"key":{"kid":")") + kKid + R"(","kty":"RSA")" + ops +
                     R"(},"attributes":)" + attributes + "}");
    auto d = provider_->Describe();
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->can_wrap, usable) << ops;
  }
}

TEST_F(AzureProviderTest, UnreadableGetKeyIsTransient) {
  for (const std::string& body :
       {std::string(R"({"key":{"kid":42},"attributes":{"enabled":"yes"}})"),
        std::string(R"({"key":{"kid":")") + kKid + R"("},"attributes":{"enabled":true,"exp":"x"}})",
        std::string(R"({"key":{"kid":")"), std::string("<html>oops</html>"), std::string()}) {
    http_->Route("/keys/tidb-cmek-1/?", 200, body);
    auto d = provider_->Describe();
    ASSERT_FALSE(d.ok()) << body;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable) << d.status();
    EXPECT_TRUE(absl::StrContains(d.status().message(),
                                  "Key Vault 'kv-x' answered getKey with a reply keyward cannot "
                                  "read ("))
        << d.status();
    EXPECT_TRUE(absl::StrContains(d.status().message(), "treating it as a transient failure"));
  }
}

TEST_F(AzureProviderTest, UnreadableArmReplyLeavesVaultFactsUnknown) {
  http_->Route("/providers/Microsoft.KeyVault/vaults/kv-x", 200,
               R"({"location":7,"properties":{"enablePurgeProtection":"yes"}})");
  auto d = provider_->Describe();
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->region.has_value());
}

TEST_F(AzureProviderTest, WrapAndUnwrapRoundTrip) {
  http_->Route("/wrapkey", 200,
               std::string(R"({"kid":")") + kKid + R"(","value":")" +
                   Base64UrlEncode(std::string(384, '\x05')) + "\"}");
  http_->Route("/unwrapkey", 200,
               std::string(R"({"kid":")") + kKid + R"(","value":")" +
                   Base64UrlEncode(std::string(32, '\x09')) + "\"}");
  auto secret = RandomSecret(32);
  ASSERT_TRUE(secret.ok());
  auto w = provider_->Wrap(*secret, "ctx");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->key_id, kKid);
  EXPECT_EQ(w->key_version, "00112233445566778899aabbccddeeff");
  EXPECT_EQ(w->ciphertext, std::string(384, '\x05'));
  auto u = provider_->Unwrap(*w, "ctx");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->view(), std::string(32, '\x09'));
}

TEST_F(AzureProviderTest, WrapReplyForAnotherKeyIsNotRecorded) {
  auto secret = RandomSecret(32);
  ASSERT_TRUE(secret.ok());
  const std::string value = Base64UrlEncode(std::string(384, '\x05'));
  for (const std::string kid :
       {"https://kv-other.vault.azure.net/keys/tidb-cmek-1/00112233445566778899aabbccddeeff",
        "https://kv-x.vault.azure.net/keys/tidb-cmek-2/00112233445566778899aabbccddeeff",
        "https://kv-x.vault.azure.net/keys/tidb-cmek-1/",
        "http://kv-x.vault.azure.net/keys/tidb-cmek-1/v"}) {
    http_->Route("/wrapkey", 200, R"({"kid":")" + kid + R"(","value":")" + value + "\"}");
    auto w = provider_->Wrap(*secret, "ctx");
    ASSERT_FALSE(w.ok()) << kid;
    // Another vault or key is named as such; a kid without a version or https is unreadable.
    EXPECT_TRUE(absl::StrContains(w.status().message(), "names a key other than 'tidb-cmek-1'") ||
                absl::StrContains(w.status().message(), "is not a versioned Key Vault key id"))
        << w.status();
  }
  // Key Vault's names are case-insensitive: its own spelling of ours is ours.
  http_->Route(
      "/wrapkey", 200,
      R"({"kid":"https://KV-X.vault.azure.net/keys/TIDB-cmek-1/0011","value":")" + value + "\"}");
  EXPECT_TRUE(provider_->Wrap(*secret, "ctx").ok());
}

TEST_F(AzureProviderTest, AnErrorEchoingTheKeyToWrapNeverReachesTheMessage) {
  auto secret = RandomSecret(32);
  ASSERT_TRUE(secret.ok());
  std::string url_form = Base64UrlEncode(secret->view());
  std::string standard = absl::StrReplaceAll(url_form, {{"-", "+"}, {"_", "/"}});
  // JSON may escape '/' and '+' in the body: the decoded message is checked too.
  std::string escaped = absl::StrReplaceAll(standard, {{"/", "\\/"}, {"+", "\\u002B"}});
  for (const std::string& echoed : {url_form, standard, escaped}) {
    http_->Route(
        "/wrapkey", 400,
        R"({"error":{"code":"BadParameter","message":"value )" + echoed + R"( is not valid"}})");
    auto w = provider_->Wrap(*secret, "ctx");
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << w.status();
    EXPECT_TRUE(absl::StrContains(w.status().message(), "rejected wrapKey (HTTP 400"))
        << w.status();
    EXPECT_FALSE(absl::StrContains(w.status().message(), url_form.substr(0, 8))) << w.status();
    EXPECT_FALSE(absl::StrContains(w.status().message(), standard.substr(0, 8))) << w.status();
  }
  // An error that does not echo it keeps its text.
  http_->Route("/wrapkey", 400, R"({"error":{"code":"BadParameter","message":"alg is wrong"}})");
  auto w = provider_->Wrap(*secret, "ctx");
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::StrContains(w.status().message(), "alg is wrong")) << w.status();
}

TEST_F(AzureProviderTest, UnreadableWrapAndUnwrapAreTransient) {
  auto secret = RandomSecret(32);
  ASSERT_TRUE(secret.ok());
  http_->Route("/wrapkey", 200, R"({"kid":["x"],"value":{"a":1}})");
  auto w = provider_->Wrap(*secret, "ctx");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(w.status().message(), "answered wrapKey with a reply keyward"));
  for (const char* body : {R"({"kid":"x","value":"AAA)", R"({"value":null})", "[]"}) {
    http_->Route("/unwrapkey", 200, body);
    auto u = provider_->Unwrap(Record(), "ctx");
    ASSERT_FALSE(u.ok()) << body;
    EXPECT_EQ(u.status().code(), absl::StatusCode::kUnavailable) << u.status();
    EXPECT_TRUE(absl::StrContains(u.status().message(), "answered unwrapKey with a reply keyward"))
        << u.status();
  }
}

TEST_F(AzureProviderTest, ServiceErrorsKeepTheirDefinitiveMapping) {
  struct Case {
    int status;
    std::string body;
    absl::StatusCode want;
    std::string says;
  };
  const std::vector<Case> cases = {
      {404, R"({"error":{"code":"KeyNotFound","message":"gone"}})", absl::StatusCode::kNotFound,
       "was not found (KeyNotFound)"},
      {404, "not json", absl::StatusCode::kNotFound, "was not found"},
      {403,
       R"({"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}})",
       absl::StatusCode::kFailedPrecondition, "is disabled in Key Vault 'kv-x'"},
      {403,
       R"({"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on an expired key.","innererror":{"code":"KeyExpired"}}})",
       absl::StatusCode::kFailedPrecondition, "has expired in Key Vault 'kv-x'"},
      {403,
       R"({"error":{"code":"Forbidden","message":"Operation wrapKey is not allowed on an expired key."}})",
       absl::StatusCode::kFailedPrecondition, "has expired"},
      {403, R"({"error":{"code":"Forbidden","innererror":{"code":"KeyNotYetValid"}}})",
       absl::StatusCode::kFailedPrecondition, "is not yet valid"},
      {403,
       R"({"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=app-1;oid=o\r\nAction: 'Microsoft.KeyVault/vaults/keys/unwrap/action'\r\nResource: '/subscriptions/...'","innererror":{"code":"ForbiddenByRbac"}}})",
       absl::StatusCode::kPermissionDenied,
       "may not perform Microsoft.KeyVault/vaults/keys/unwrap/action on key 'tidb-cmek-1'"},
      {403, "<html>Forbidden</html>", absl::StatusCode::kPermissionDenied, "may not perform"},
      {403, R"({"error":{"code":403,"innererror":"KeyDisabled"}})",
       absl::StatusCode::kPermissionDenied, "may not perform"},
      {503, R"({"error":{"code":"ServiceUnavailable"}})", absl::StatusCode::kUnavailable,
       "is unavailable for unwrapKey (HTTP 503 ServiceUnavailable)"},
      {429, "", absl::StatusCode::kUnavailable, "HTTP 429"},
      {400, R"({"error":{"code":"BadParameter","message":"bad"}})",
       absl::StatusCode::kInvalidArgument, "rejected unwrapKey (HTTP 400 BadParameter): bad"},
  };
  for (const auto& c : cases) {
    http_->Route("/unwrapkey", c.status, c.body);
    auto u = provider_->Unwrap(Record(), "ctx");
    ASSERT_FALSE(u.ok()) << c.body;
    EXPECT_EQ(u.status().code(), c.want) << c.body << " -> " << u.status();
    EXPECT_TRUE(absl::StrContains(u.status().message(), c.says)) << u.status();
  }
}

TEST_F(AzureProviderTest, ErrorTextsStayValidUtf8) {
  std::string message;
  for (int i = 0; i < 300; ++i) message += "\xc3\xa9";  // é, cut mid-character at 200 bytes
  http_->Route("/unwrapkey", 400,
               R"({"error":{"code":"BadParameter","message":")" + message + "\"}}");
  auto u = provider_->Unwrap(Record(), "ctx");
  ASSERT_FALSE(u.ok());
  // The REST API dumps messages as JSON, which throws on invalid UTF-8.
  nlohmann::json j = {{"message", std::string(u.status().message())}};
  EXPECT_NO_THROW((void)j.dump());
}

TEST_F(AzureProviderTest, UnreadableTokenReplyIsTransient) {
  http_->Route("/oauth2/v2.0/token", 200, R"({"access_token":{"nested":null},"expires_in":"x"})");
  auto d = provider_->Describe();
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(d.status().message(),
                                "Entra ID answered a token request for application app-1"))
      << d.status();
  http_->Route("/oauth2/v2.0/token", 401, "{\"error\":5}");
  d = provider_->Describe();
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnauthenticated) << d.status();
}

}  // namespace
}  // namespace keyward
