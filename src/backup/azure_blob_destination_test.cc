#include "backup/azure_blob_destination.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "backup/azure_blob_wire.h"
#include "util/base64.h"

namespace keyward {
namespace {

constexpr char kDevKey[] =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

// Worked vectors: the strings to sign written out by hand from the Shared Key rules (Blob
// service REST reference, "Authorize with Shared Key"), the signatures computed independently
//   printf '%s' "$S" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$(base64 -d <<<KEY | xxd -p)
//     -binary | base64
TEST(AzureBlobWireTest, SharedKeyListOnPathStyleEndpoint) {
  std::map<std::string, std::string> headers = {{"x-ms-version", "2021-12-02"},
                                                {"x-ms-date", "Sun, 29 Nov 2026 06:56:25 GMT"}};
  // Query in URL order; the signature sorts names and uses decoded values.
  BlobQuery q = {
      {"restype", "container"}, {"comp", "list"}, {"prefix", "b-1/"}, {"marker", "2!a+b/c="}};
  std::string sts =
      SharedKeyStringToSign("GET", headers, "devstoreaccount1", "/devstoreaccount1/backups", q);
  EXPECT_EQ(sts,
            "GET\n\n\n\n\n\n\n\n\n\n\n\n"
            "x-ms-date:Sun, 29 Nov 2026 06:56:25 GMT\nx-ms-version:2021-12-02\n"
            "/devstoreaccount1/devstoreaccount1/backups\ncomp:list\nmarker:2!a+b/c=\n"
            "prefix:b-1/\nrestype:container");
  auto key = Base64Decode(kDevKey);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(SharedKeyAuthorization("devstoreaccount1", *key, sts),
            "SharedKey devstoreaccount1:/cGTKlDNJoqiqPv3hxajMNcwGia9jo9/7pqbN/64Uyc=");
  EXPECT_EQ(BlobQueryString(q),
            "?restype=container&comp=list&prefix=b-1%2F&marker=2%21a%2Bb%2Fc%3D");
}

TEST(AzureBlobWireTest, SharedKeyPutBlobWithLengthAndType) {
  std::map<std::string, std::string> headers = {
      {"x-ms-version", "2021-12-02"},    {"x-ms-date", "Sun, 29 Nov 2026 06:56:25 GMT"},
      {"x-ms-blob-type", " BlockBlob "}, {"content-type", "application/octet-stream"},
      {"content-length", "5"},           {"expect", ""}};
  std::string sts = SharedKeyStringToSign("PUT", headers, "myaccount", "/backups/b-1/manifest", {});
  EXPECT_EQ(sts,
            "PUT\n\n\n5\n\napplication/octet-stream\n\n\n\n\n\n\n"
            "x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 29 Nov 2026 06:56:25 GMT\n"
            "x-ms-version:2021-12-02\n/myaccount/backups/b-1/manifest");
  auto key = Base64Decode(kDevKey);
  EXPECT_EQ(SharedKeyAuthorization("myaccount", *key, sts),
            "SharedKey myaccount:xIhe2HjWMN1Vw6rlp1iy98BcHpPh5OgMfAQsM/uHimo=");
  // Content-Length 0 signs as empty.
  headers["content-length"] = "0";
  EXPECT_TRUE(absl::StartsWith(SharedKeyStringToSign("PUT", headers, "a", "/c", {}),
                               "PUT\n\n\n\n\napplication"));
  EXPECT_EQ(BlobHttpDate(1795935385), "Sun, 29 Nov 2026 06:56:25 GMT");
}

TEST(AzureBlobWireTest, ParsesListPagesAndRefusesMalformed) {
  auto page = ParseBlobList(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults "
      "ServiceEndpoint=\"x\" ContainerName=\"c\"><Prefix>b-1/</Prefix><MaxResults>2</MaxResults>"
      "<Blobs><Blob><Name>b-1/data/000000-00000000</Name><Properties><Content-Length>10"
      "</Content-Length></Properties></Blob><Blob><Name>b-1/a&amp;b&#x41;</Name></Blob></Blobs>"
      "<NextMarker>2!96!MDAw&amp;</NextMarker></EnumerationResults>");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->names, (std::vector<std::string>{"b-1/data/000000-00000000", "b-1/a&bA"}));
  EXPECT_EQ(page->next_marker, "2!96!MDAw&");

  auto last = ParseBlobList("<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_TRUE(last->names.empty());
  EXPECT_EQ(last->next_marker, "");

  for (const char* bad :
       {"<html>not a listing</html>", "<EnumerationResults><Blobs><Blob><Name>x</Name>",
        "<EnumerationResults><Blobs><Blob><Name>a&bogus;</Name></Blob></Blobs>"
        "</EnumerationResults>",
        "<EnumerationResults><Blobs><Blob></Blob></Blobs></EnumerationResults>",
        "<EnumerationResults><Blobs><Blob><Name>a<b</Name></Blob></Blobs></EnumerationResults>"}) {
    EXPECT_FALSE(ParseBlobList(bad).ok()) << bad;
  }
  std::string many = "<EnumerationResults><Blobs>";
  for (int i = 0; i < 5001; ++i) absl::StrAppend(&many, "<Blob><Name>n", i, "</Name></Blob>");
  many += "</Blobs></EnumerationResults>";
  EXPECT_FALSE(ParseBlobList(many).ok());  // bounded: more than one page may hold
}

TEST(AzureBlobWireTest, BlockListsAndIds) {
  auto blocks = ParseBlockList(
      "<?xml version=\"1.0\"?><BlockList><CommittedBlocks><Block><Name>QUFB</Name><Size>9</Size>"
      "</Block></CommittedBlocks><UncommittedBlocks><Block><Name>MDAw</Name><Size>4</Size></Block>"
      "<Block><Name>MDAx</Name><Size>5</Size></Block></UncommittedBlocks></BlockList>",
      "UncommittedBlocks");
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  EXPECT_EQ(*blocks, (std::map<std::string, uint64_t>{{"MDAw", 4}, {"MDAx", 5}}));
  auto none = ParseBlockList("<BlockList><UncommittedBlocks /></BlockList>", "UncommittedBlocks");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(ParseBlockList("<Error/>", "UncommittedBlocks").ok());

  // Same length for every index; same data and index → same id; other data → other id.
  EXPECT_EQ(BlockIdFor(0, "abc"), BlockIdFor(0, "abc"));
  EXPECT_NE(BlockIdFor(0, "abc"), BlockIdFor(1, "abc"));
  EXPECT_NE(BlockIdFor(0, "abc"), BlockIdFor(0, "abd"));
  EXPECT_EQ(BlockIdFor(0, "x").size(), BlockIdFor(49999, std::string(1 << 20, 'y')).size());
  EXPECT_EQ(BlockListXml({"QQ==", "Qg=="}),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>QQ==</Latest>"
            "<Latest>Qg==</Latest></BlockList>");
  EXPECT_EQ(BlobErrorCode({},
                          "<Error><Code>AuthenticationFailed</Code><Message>MAC "
                          "signature 'abc' string to sign</Message></Error>"),
            "AuthenticationFailed");
  EXPECT_EQ(BlobErrorCode({{"x-ms-error-code", "has spaces: secret"}}, ""), "");
}

// An in-memory Blob service behind HttpClient::Send: block blobs, uncommitted blocks, listing
// in pages of two, and a switch that fails Put Block requests.
class FakeBlobService : public HttpClient {
 public:
  FakeBlobService() : HttpClient(HttpClientOptions{}) {}

  absl::StatusOr<HttpResponse> Send(const HttpRequest& r) const override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(absl::StrCat(r.method, " ", r.url));
    for (const auto& h : r.headers) {
      if (absl::StartsWith(h, "Authorization: SharedKey acct:")) signed_++;
    }
    const std::string base = "https://acct.blob.core.windows.net/backups";
    if (!absl::StartsWith(r.url, base)) return Reply(400, "InvalidUri");
    std::string rest = r.url.substr(base.size());
    std::string query;
    if (auto q = rest.find('?'); q != std::string::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    std::map<std::string, std::string> params;
    for (absl::string_view kv : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      params[p.first] = Decode(p.second);
    }
    std::string blob = rest.empty() ? "" : rest.substr(1);
    if (r.method == "PUT" && params["comp"] == "block") {
      if (fail_blocks_after_ >= 0 && blocks_put_ >= fail_blocks_after_) return Reply(500, "X");
      ++blocks_put_;
      uncommitted_[blob][params["blockid"]] = r.body;
      return Reply(201, "");
    }
    if (r.method == "PUT" && params["comp"] == "blocklist") {
      std::string data;
      for (size_t at = r.body.find("<Latest>"); at != std::string::npos;
           at = r.body.find("<Latest>", at + 1)) {
        size_t end = r.body.find("</Latest>", at);
        std::string id = r.body.substr(at + 8, end - at - 8);
        auto it = uncommitted_[blob].find(id);
        if (it == uncommitted_[blob].end()) return Reply(400, "InvalidBlockList");
        data += it->second;
      }
      blobs_[blob] = data;
      uncommitted_.erase(blob);
      return Reply(201, "");
    }
    if (r.method == "PUT") {
      blobs_[blob] = r.body;
      return Reply(201, "");
    }
    if (r.method == "GET" && params["comp"] == "blocklist") {
      if (!uncommitted_.count(blob)) return Reply(404, "BlobNotFound");
      std::string xml = "<BlockList><UncommittedBlocks>";
      for (const auto& [id, data] : uncommitted_[blob]) {
        absl::StrAppend(&xml, "<Block><Name>", id, "</Name><Size>", data.size(), "</Size></Block>");
      }
      return Reply(200, "", xml + "</UncommittedBlocks></BlockList>");
    }
    if (r.method == "GET" && params["comp"] == "list") {
      std::string xml = "<EnumerationResults><Blobs>";
      int n = 0;
      std::string next;
      for (auto it = blobs_.lower_bound(params["marker"]); it != blobs_.end(); ++it) {
        if (!absl::StartsWith(it->first, params["prefix"])) continue;
        if (n++ == 2) {
          next = it->first;
          break;
        }
        absl::StrAppend(&xml, "<Blob><Name>", it->first, "</Name></Blob>");
      }
      return Reply(
          200, "",
          absl::StrCat(xml, "</Blobs><NextMarker>", next, "</NextMarker></EnumerationResults>"));
    }
    if (r.method == "GET") {
      auto it = blobs_.find(blob);
      if (it == blobs_.end()) return Reply(404, "BlobNotFound");
      return Reply(200, "", it->second);
    }
    if (r.method == "DELETE") {
      return Reply(blobs_.erase(blob) ? 202 : 404, blobs_.count(blob) ? "" : "BlobNotFound");
    }
    return Reply(400, "Unsupported");
  }

  static std::string Decode(absl::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size() + 0) {
        out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  }
  static HttpResponse Reply(int status, const std::string& code, std::string body = "") {
    HttpResponse r;
    r.status = status;
    if (!code.empty()) r.headers["x-ms-error-code"] = code;
    r.body = std::move(body);
    return r;
  }

  mutable std::mutex mu_;
  mutable std::vector<std::string> requests_;
  mutable std::map<std::string, std::string> blobs_;
  mutable std::map<std::string, std::map<std::string, std::string>> uncommitted_;
  mutable int blocks_put_ = 0;
  mutable int fail_blocks_after_ = -1;
  mutable int signed_ = 0;
};

std::unique_ptr<AzureBlobDestination> NewDest(std::shared_ptr<FakeBlobService> fake) {
  AzureBlobConfig c;
  c.account = "acct";
  c.container = "backups";
  c.block_size = 64 << 10;
  auto d = AzureBlobDestination::New(c, kDevKey, nullptr, fake);
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

TEST(AzureBlobDestinationTest, LargeObjectResumesWithOnlyTheMissingBlocks) {
  auto fake = std::make_shared<FakeBlobService>();
  auto dest = NewDest(fake);
  EXPECT_EQ(dest->Describe(), "azure:https://acct.blob.core.windows.net/backups");
  std::string data;
  for (int i = 0; i < 5 * 65536 + 100; ++i) data.push_back(static_cast<char>(i * 7 + (i >> 9)));
  // The upload dies after 3 of its 6 blocks: nothing is committed, so nothing is listed.
  fake->fail_blocks_after_ = 3;
  absl::Status st = dest->Put("b-1/data/000000-00000000", data);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(),
                                "account acct, container backups: cannot write block 3 of "
                                "b-1/data/000000-00000000"))
      << st;
  EXPECT_TRUE(dest->List("b-1/")->empty());
  EXPECT_TRUE(absl::IsNotFound(dest->Get("b-1/data/000000-00000000").status()));
  // Retried: the 3 blocks the service holds are not sent again.
  fake->fail_blocks_after_ = -1;
  fake->blocks_put_ = 0;
  ASSERT_TRUE(dest->Put("b-1/data/000000-00000000", data).ok());
  EXPECT_EQ(fake->blocks_put_, 3);
  auto got = dest->Get("b-1/data/000000-00000000");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == data);
  // A small object: one Put Blob, no blocks.
  fake->blocks_put_ = 0;
  ASSERT_TRUE(dest->Put("b-1/manifest", "tiny").ok());
  EXPECT_EQ(fake->blocks_put_, 0);
  EXPECT_EQ(fake->signed_, static_cast<int>(fake->requests_.size()));
}

TEST(AzureBlobDestinationTest, ListPagesDeleteAllAndNames) {
  auto fake = std::make_shared<FakeBlobService>();
  auto dest = NewDest(fake);
  for (const char* n : {"b-1/manifest", "b-1/data/000000-00000000", "b-1/data/000000-00000001",
                        "b-1/data/000001-00000000", "b-2/manifest"}) {
    ASSERT_TRUE(dest->Put(n, n).ok());
  }
  auto listed = dest->List("b-1/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed,
            (std::vector<std::string>{"b-1/data/000000-00000000", "b-1/data/000000-00000001",
                                      "b-1/data/000001-00000000", "b-1/manifest"}));
  int list_calls = 0;
  for (const auto& r : fake->requests_) list_calls += absl::StrContains(r, "comp=list");
  EXPECT_EQ(list_calls, 2);  // pages of two: followed NextMarker
  ASSERT_TRUE(dest->Delete("b-1/manifest").ok());
  ASSERT_TRUE(dest->Delete("b-1/manifest").ok());  // absent: not an error
  ASSERT_TRUE(dest->DeleteAll("b-1/").ok());
  EXPECT_TRUE(dest->List("b-1/")->empty());
  EXPECT_EQ(*dest->List(""), std::vector<std::string>{"b-2/manifest"});
  EXPECT_FALSE(dest->Put("../x", "a").ok());
  EXPECT_FALSE(dest->Put("b-1/a b", "a").ok());
  EXPECT_FALSE(dest->DeleteAll("b-2").ok());
}

TEST(AzureBlobDestinationTest, RefusalsNameTheAccountButNeverTheKey) {
  auto fake = std::make_shared<FakeBlobService>();
  AzureBlobConfig c;
  c.account = "acct";
  c.container = "backups";
  c.endpoint = "http://acct.blob.core.windows.net";
  EXPECT_FALSE(AzureBlobDestination::New(c, kDevKey, nullptr, fake).ok());  // TLS only
  c.endpoint = "";
  c.container = "Bad_Name";
  EXPECT_FALSE(AzureBlobDestination::New(c, kDevKey, nullptr, fake).ok());
  c.container = "backups";
  auto no_cred = AzureBlobDestination::New(c, "", nullptr, fake);
  ASSERT_FALSE(no_cred.ok());
  EXPECT_TRUE(absl::StrContains(no_cred.status().message(), "AZURE_STORAGE_KEY"));
  auto bad_key = AzureBlobDestination::New(c, "not base64 !!", nullptr, fake);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_FALSE(absl::StrContains(bad_key.status().message(), "not base64 !!"));

  // The service refuses the signature.
  class Refusing : public HttpClient {
   public:
    Refusing() : HttpClient(HttpClientOptions{}) {}
    absl::StatusOr<HttpResponse> Send(const HttpRequest&) const override {
      HttpResponse r;
      r.status = 403;
      r.body =
          "<Error><Code>AuthorizationFailure</Code><Message>Server used string to sign "
          "'PUT...' signature 'abc'</Message></Error>";
      return r;
    }
  };
  auto dest = AzureBlobDestination::New(c, kDevKey, nullptr, std::make_shared<Refusing>());
  ASSERT_TRUE(dest.ok());
  absl::Status st = (*dest)->Put("b-1/manifest", "x");
  EXPECT_TRUE(absl::IsPermissionDenied(st)) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "account acct")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "AZURE_STORAGE_KEY")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "AuthorizationFailure")) << st;
  EXPECT_FALSE(absl::StrContains(st.message(), "signature")) << st;
  EXPECT_FALSE(absl::StrContains(st.message(), kDevKey)) << st;
}

// Entra: a bearer token for https://storage.azure.com from keyward's identity; a 401 gets one
// fresh token and one resend.
TEST(AzureBlobDestinationTest, EntraBearerTokenScopeAndRefresh) {
  class EntraAndBlob : public HttpClient {
   public:
    EntraAndBlob() : HttpClient(HttpClientOptions{}) {}
    absl::StatusOr<HttpResponse> Send(const HttpRequest& r) const override {
      std::lock_guard<std::mutex> lock(mu);
      HttpResponse out;
      if (absl::StrContains(r.url, "/oauth2/v2.0/token")) {
        token_bodies.push_back(r.body);
        out.status = 200;
        out.body = absl::StrCat(R"({"token_type":"Bearer","expires_in":3599,"access_token":"tok)",
                                token_bodies.size(), R"("})");
        return out;
      }
      for (const auto& h : r.headers) {
        if (absl::StartsWith(h, "Authorization: ")) auth.push_back(h);
      }
      out.status = auth.size() == 1 ? 401 : 201;  // the first token is "expired"
      return out;
    }
    mutable std::mutex mu;
    mutable std::vector<std::string> token_bodies;
    mutable std::vector<std::string> auth;
  };
  auto http = std::make_shared<EntraAndBlob>();
  EntraIdentity id;
  id.tenant_id = "t1";
  id.client_id = "app";
  id.client_secret = "s3cret";
  id.authority_host = "https://login.test";
  auto tokens = std::make_shared<EntraTokenSource>(id, http);
  AzureBlobConfig c;
  c.account = "acct";
  c.container = "backups";
  auto dest = AzureBlobDestination::New(c, "", tokens, http);
  ASSERT_TRUE(dest.ok()) << dest.status();
  ASSERT_TRUE((*dest)->Put("b-1/manifest", "x").ok());
  ASSERT_EQ(http->token_bodies.size(), 2u);
  EXPECT_TRUE(
      absl::StrContains(http->token_bodies[0], "scope=https%3A%2F%2Fstorage.azure.com%2F.default"))
      << http->token_bodies[0];
  EXPECT_EQ(http->auth,
            (std::vector<std::string>{"Authorization: Bearer tok1", "Authorization: Bearer tok2"}));
  // Both a key and a token source: refused (one credential, chosen explicitly).
  EXPECT_FALSE(AzureBlobDestination::New(c, kDevKey, tokens, http).ok());
}

}  // namespace
}  // namespace keyward
