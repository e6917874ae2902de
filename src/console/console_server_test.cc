#include "console/console_server.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>

#include "console/console_assets.h"

namespace keyward {
namespace {

TEST(ConsoleServer, IndexIsServedAtTheRootWithItsType) {
  ConsoleReply r = ConsoleAnswer("", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<script type=\"module\" src=\"/console/app.js\">"), std::string::npos);
  EXPECT_FALSE(r.etag.empty());
  EXPECT_EQ(ConsoleAnswer("index.html", "").body, r.body);
}

TEST(ConsoleServer, EveryEmbeddedFileHasAKnownTypeAndAStrongEtag) {
  std::set<std::string> etags;
  ASSERT_GE(ConsoleAssets().size(), 8u);
  for (const ConsoleAsset& a : ConsoleAssets()) {
    EXPECT_NE(ConsoleContentType(a.path), "application/octet-stream") << a.path;
    EXPECT_EQ(a.etag.front(), '"') << a.path;
    EXPECT_FALSE(a.body.empty()) << a.path;
    ConsoleReply r = ConsoleAnswer(a.path, "");
    EXPECT_EQ(r.status, 200) << a.path;
    EXPECT_EQ(r.body, a.body) << a.path;
    etags.insert(std::string(a.etag));
  }
  EXPECT_EQ(etags.size(), ConsoleAssets().size()) << "ETags follow the content";
}

TEST(ConsoleServer, MatchingEtagIsNotModified) {
  ConsoleReply first = ConsoleAnswer("app.js", "");
  ConsoleReply again = ConsoleAnswer("app.js", first.etag);
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(ConsoleAnswer("app.js", "\"other\"").status, 200);
  EXPECT_EQ(ConsoleAnswer("app.js", "W/" + first.etag + ", \"x\"").status, 304);
}

TEST(ConsoleServer, UnknownAndTraversingPathsAre404) {
  for (const char* p : {"nope.js", "../CMakeLists.txt", "pages/../app.js", "pages", "/app.js",
                        "APP.JS", "app.js/"}) {
    ConsoleReply r = ConsoleAnswer(p, "");
    EXPECT_EQ(r.status, 404) << p;
    EXPECT_NE(r.body.find("the console starts at /"), std::string::npos) << p;
  }
}

// Only same-origin, non-inline code: what the Content-Security-Policy allows.
TEST(ConsoleServer, PagesNeedNothingTheCspForbids) {
  std::string csp(kConsoleCsp);
  for (const char* d : {"default-src 'self'", "script-src 'self'", "connect-src 'self'",
                        "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"}) {
    EXPECT_NE(csp.find(d), std::string::npos) << d;
  }
  EXPECT_EQ(csp.find("unsafe"), std::string::npos);
  // No scheme sources: the console loads only its own files, so data: or blob: would only widen
  // what injected markup could load.
  EXPECT_EQ(csp.find("data:"), std::string::npos);
  EXPECT_EQ(csp.find("blob:"), std::string::npos);
  std::set<std::string> paths;
  for (const ConsoleAsset& a : ConsoleAssets()) paths.insert(std::string(a.path));
  static const std::regex kInline(R"(<script>|<style|\sstyle=|\son[a-z]+=|javascript:)");
  static const std::regex kRef(R"((?:src|href)="([^"]+)\")");
  static const std::regex kImport(R"((?:from|import\() '([^']+)')");
  for (const ConsoleAsset& a : ConsoleAssets()) {
    std::string body(a.body);
    if (a.path.ends_with(".html")) {
      EXPECT_FALSE(std::regex_search(body, kInline)) << a.path;
      for (std::sregex_iterator it(body.begin(), body.end(), kRef), end; it != end; ++it) {
        std::string ref = (*it)[1];
        ASSERT_EQ(ref.rfind("/console/", 0), 0u) << a.path << " refers to " << ref;
        EXPECT_TRUE(paths.count(ref.substr(9))) << a.path << " refers to missing " << ref;
      }
    }
    // Nothing loaded from elsewhere (fonts, images): the console needs no network but the
    // server's. Links to documentation a user may follow are fine.
    if (a.path.ends_with(".css")) {
      EXPECT_EQ(body.find("url(http"), std::string::npos) << a.path;
      EXPECT_EQ(body.find("@import"), std::string::npos) << a.path;
    }
    if (a.path.ends_with(".js")) {
      std::string dir(a.path.substr(0, a.path.rfind('/') + 1));
      for (std::sregex_iterator it(body.begin(), body.end(), kImport), end; it != end; ++it) {
        std::string rel = (*it)[1];
        std::string target = dir;
        if (rel.rfind("./", 0) == 0) {
          target += rel.substr(2);
        } else {  // ../ from pages/
          target = rel.substr(3);
        }
        EXPECT_TRUE(paths.count(target)) << a.path << " imports missing " << rel;
      }
    }
  }
}

TEST(ConsoleServer, RegionsAreTheServersOwnList) {
  ConsoleReply r = ConsoleAnswer("regions.json", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_NE(std::find(j["azure"].begin(), j["azure"].end(), "eastus"), j["azure"].end());
  EXPECT_NE(std::find(j["aws"].begin(), j["aws"].end(), "us-east-1"), j["aws"].end());
}

}  // namespace
}  // namespace keyward
