#include "console/console_server.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "console/console_assets.h"
#include "control/regions.h"

namespace keyward {
namespace {

constexpr std::string_view kIndex = "index.html";
constexpr std::string_view kRegions = "regions.json";

// The server's region lists, built once: they are compiled in and never change.
const std::string& RegionsJson() {
  static const std::string* json = [] {
    nlohmann::json out = nlohmann::json::object();
    for (const char* cloud : {"aws", "azure", "gcp"}) {
      nlohmann::json names = nlohmann::json::array();
      for (std::string_view r : KnownRegions(cloud)) names.push_back(std::string(r));
      out[cloud] = names;
    }
    return new std::string(out.dump());
  }();
  return *json;
}

bool EtagMatches(std::string_view if_none_match, std::string_view etag) {
  if (if_none_match.empty() || etag.empty()) return false;
  if (if_none_match == "*") return true;
  // A list of quoted tags, possibly weak (W/"…"); a weak match is enough for GET (RFC 9110).
  return if_none_match.find(etag) != std::string_view::npos;
}

void WriteReply(const ConsoleReply& r, httplib::Response& res) {
  res.status = r.status;
  res.set_header("Content-Security-Policy", std::string(kConsoleCsp));
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cross-Origin-Opener-Policy", "same-origin");
  res.set_header("Cache-Control", "no-cache");
  if (!r.etag.empty()) res.set_header("ETag", r.etag);
  if (r.status == 304) return;
  res.set_content(r.body, r.content_type);
}

}  // namespace

std::string_view ConsoleContentType(std::string_view path) {
  struct Type {
    std::string_view ext, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const Type& t : kTypes) {
    if (path.ends_with(t.ext)) return t.type;
  }
  return "application/octet-stream";
}

ConsoleReply ConsoleAnswer(std::string_view rel, std::string_view if_none_match) {
  if (rel.empty()) rel = kIndex;
  ConsoleReply r;
  if (rel == kRegions) {
    r.status = 200;
    r.content_type = std::string(ConsoleContentType(rel));
    r.body = RegionsJson();
    return r;
  }
  for (const ConsoleAsset& a : ConsoleAssets()) {
    if (a.path != rel) continue;
    r.etag = std::string(a.etag);
    if (EtagMatches(if_none_match, a.etag)) {
      r.status = 304;
      return r;
    }
    r.status = 200;
    r.content_type = std::string(ConsoleContentType(rel));
    r.body = std::string(a.body);
    return r;
  }
  r.status = 404;
  r.content_type = "text/plain; charset=utf-8";
  r.body = absl::StrCat("no console file /console/", std::string(rel),
                        "; the console starts at / (its pages are #/projects, #/clusters, ...)\n");
  return r;
}

void RegisterConsoleRoutes(httplib::Server& http) {
  auto serve = [](const httplib::Request& req, httplib::Response& res, std::string_view rel) {
    WriteReply(ConsoleAnswer(rel, req.get_header_value("If-None-Match")), res);
  };
  http.Get("/",
           [serve](const httplib::Request& req, httplib::Response& res) { serve(req, res, ""); });
  http.Get("/console/?",
           [serve](const httplib::Request& req, httplib::Response& res) { serve(req, res, ""); });
  http.Get("/console/(.+)", [serve](const httplib::Request& req, httplib::Response& res) {
    serve(req, res, req.matches[1].str());
  });
}

}  // namespace keyward
