// A new KMS provider needs only its module: test-vault (tests/support/test_vault_provider.cc),
// registered from this file, shows up in GET /api/v1/kms-providers with its fields and regions,
// its config is validated with errors naming the field, and a key of it is created, tested and
// used by a cluster — through the real REST server, control plane and registry KMS factory,
// none of which names it.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>

#include "api/rest_server.h"
#include "control/control_plane.h"
#include "crypto/random.h"
#include "kms/escrow/escrow_module.h"
#include "kms/escrow/escrow_provider.h"
#include "test_vault_provider.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class KmsProvidersRouteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-kmsroute-" + *RandomHex(6));
    fs::create_directories(root_ / "clusters");
    auto escrow = EscrowProvider::LoadOrCreate((root_ / "escrow.key").string());
    ASSERT_TRUE(escrow.ok());
    // The product's registry factory, with only the escrow client: test-vault brings its own.
    kms_ = NewRegistryKmsFactory(
        {{"escrow", NewEscrowClient(std::shared_ptr<MasterKeyProvider>(std::move(*escrow)))}});
    auto md = OpenSqliteMetadataStore((root_ / "metadata.db").string());
    ASSERT_TRUE(md.ok()) << md.status();
    metadata_ = std::move(*md);
    auto resp = RespServer::New({});
    ASSERT_TRUE(resp.ok());
    resp_ = std::move(*resp);
    ClusterRuntimeOptions ro;
    ro.data_dir = root_.string();
    runtime_ = std::make_unique<ClusterRuntime>(ro, *resp_,
                                                SharedStorageResources::New(8 << 20, 16 << 20));
    control_ = std::make_unique<ControlPlane>(*metadata_, *kms_, *runtime_, ServiceIdentity{});
    auto token = control_->Bootstrap();
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *token;
    RestServerOptions opts;
    opts.port = 0;
    auto rest = RestServer::New(opts, *control_, *metadata_);
    ASSERT_TRUE(rest.ok()) << rest.status();
    rest_ = std::move(*rest);
    rest_->Start();
  }
  void TearDown() override {
    if (rest_) rest_->Stop();
    runtime_->Shutdown();
    resp_->Stop();
    fs::remove_all(root_);
  }

  std::pair<int, json> Call(const std::string& method, const std::string& path,
                            const json& body = nullptr) {
    httplib::Client client("127.0.0.1", rest_->port());
    httplib::Headers headers = {{"Authorization", "Bearer " + token_}};
    httplib::Result r =
        method == "GET"
            ? client.Get(path, headers)
            : client.Post(path, headers, body.is_null() ? "" : body.dump(), "application/json");
    if (!r) return {0, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }

  ScopedTestVaultProvider test_vault_;  // registered before the server starts
  fs::path root_;
  std::string token_;
  std::unique_ptr<KmsFactory> kms_;
  std::unique_ptr<MetadataStore> metadata_;
  std::unique_ptr<RespServer> resp_;
  std::unique_ptr<ClusterRuntime> runtime_;
  std::unique_ptr<ControlPlane> control_;
  std::unique_ptr<RestServer> rest_;
};

TEST_F(KmsProvidersRouteTest, ListsEveryCustomerManagedProviderWithFieldsAndRegions) {
  auto [status, body] = Call("GET", "/api/v1/kms-providers");
  ASSERT_EQ(status, 200) << body.dump();
  std::map<std::string, json> by_name;
  for (const json& p : body["items"]) by_name[p["name"]] = p;
  ASSERT_EQ(by_name.size(), 3u) << body.dump();  // escrow is the service's, not listed
  EXPECT_EQ(by_name["azure-key-vault"]["display_name"], "Azure Key Vault");
  EXPECT_EQ(by_name["azure-key-vault"]["configured"], false);  // no Azure client here
  EXPECT_EQ(by_name["aws-kms"]["config_fields"][0]["name"], "key_arn");
  EXPECT_NE(std::find(by_name["aws-kms"]["regions"].begin(), by_name["aws-kms"]["regions"].end(),
                      "us-east-1"),
            by_name["aws-kms"]["regions"].end());
  const json& tv = by_name["test-vault"];
  EXPECT_EQ(tv["configured"], true);
  EXPECT_EQ(tv["cloud"], "gcp");
  EXPECT_EQ(tv["config_fields"][0]["cli_flag"], "--vault");
  EXPECT_NE(std::find(tv["regions"].begin(), tv["regions"].end(), "us-central1"),
            tv["regions"].end());
}

TEST_F(KmsProvidersRouteTest, ANewProviderModuleIsUsableForAKeyAndACluster) {
  auto [ps, project] = Call("POST", "/api/v1/projects", {{"name", "tv"}, {"cmek_enabled", true}});
  ASSERT_EQ(ps, 201) << project.dump();
  std::string keys = "/api/v1/projects/" + project["id"].get<std::string>() + "/encryption-keys";

  // Config validation comes from the module, errors name the field.
  auto [bs, bad] = Call("POST", keys,
                        {{"provider", "test-vault"},
                         {"region", "us-central1"},
                         {"provider_config", {{"vault", "nope"}}}});
  EXPECT_EQ(bs, 400);
  EXPECT_EQ(bad["error"]["message"], "provider_config.vault must look like tv-name");
  auto [us, unknown] = Call("POST", keys,
                            {{"provider", "test-vault"},
                             {"region", "us-central1"},
                             {"provider_config", {{"vault", "tv-a"}, {"colour", "red"}}}});
  EXPECT_EQ(us, 400);
  EXPECT_EQ(unknown["error"]["message"], "unknown field 'provider_config.colour'");
  auto [ks, kind] = Call("POST", keys, {{"provider", "kmip"}, {"region", "us-central1"}});
  EXPECT_EQ(ks, 400);
  EXPECT_EQ(kind["error"]["message"],
            "provider must be azure-key-vault, aws-kms or test-vault (the key management "
            "services CMEK supports), not 'kmip'");

  auto [cs, key] = Call("POST", keys,
                        {{"provider", "test-vault"},
                         {"region", "us-central1"},
                         {"provider_config", {{"vault", "tv-a"}}}});
  ASSERT_EQ(cs, 201) << key.dump();
  EXPECT_EQ(key["state"], "pending");
  EXPECT_EQ(key["key_name"], "tv-a/us-central1/cmek");
  EXPECT_EQ(key["setup"]["text"], "create key tv-a/us-central1/cmek in your test vault\n");

  auto [ts, tested] = Call("POST", keys + "/" + key["id"].get<std::string>() + ":test");
  ASSERT_EQ(ts, 200) << tested.dump();
  EXPECT_EQ(tested["state"], "active") << tested.dump();
  std::vector<std::string> steps;
  for (const json& c : tested["checks"]) steps.push_back(c["step"]);
  EXPECT_EQ(steps, (std::vector<std::string>{"connect", "describe", "enabled", "wrap", "unwrap"}));

  // The CMEK project's gcp clusters use it: created, encrypted under the test-vault key.
  auto [cls, cluster] =
      Call("POST", "/api/v1/projects/" + project["id"].get<std::string>() + "/clusters",
           {{"name", "c1"},
            {"cloud_provider", "gcp"},
            {"region", "us-central1"},
            {"tier", "dedicated"}});
  ASSERT_EQ(cls, 201) << cluster.dump();
  EXPECT_EQ(cluster["state"], "available");
  EXPECT_EQ(cluster["encryption"]["provider"], "test-vault") << cluster.dump();
}

}  // namespace
}  // namespace keyward
