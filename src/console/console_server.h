#pragma once
// The web console, served by `keyward serve` from the API's own origin: GET / is the console's
// page (index.html) and GET /console/<file> its scripts, styles and images, all embedded in the
// binary (console_assets.h). The console is a client of the public REST API only: it signs in
// with an API token and calls /api/v1/ with it; nothing here reads or changes server state,
// except /console/regions.json, the cloud regions the server accepts (control/regions.h), so the
// console's region lists and the server's checks cannot drift apart.
//
// Every answer, 404s included, carries a strict Content-Security-Policy (same-origin scripts,
// styles and connections only; no inline code; no framing), nosniff, no-referrer and
// Cache-Control: no-cache with an ETag (asset names carry no content hash, so a browser
// revalidates rather than mixing an old app.js with a new index.html).
// Unknown /console/ paths are a 404 (the console routes with #fragments, so the server never
// needs to answer a deep link with index.html).

#include <string>
#include <string_view>

namespace httplib {
class Server;
}

namespace keyward {

inline constexpr std::string_view kConsoleCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'";

// One answer of the console, before it is written to a response.
struct ConsoleReply {
  int status = 404;
  std::string content_type;
  std::string body;
  std::string etag;  // empty for a 404
};

// The answer for `rel`, a path relative to /console/ ("" for index.html). `if_none_match` is
// the request's If-None-Match header: a matching ETag answers 304 with no body.
ConsoleReply ConsoleAnswer(std::string_view rel, std::string_view if_none_match);

// "text/javascript; charset=utf-8" for "app.js", and so on; application/octet-stream when the
// extension is unknown (with nosniff, a browser will not run it).
std::string_view ConsoleContentType(std::string_view path);

// Registers GET / and GET /console/... on `http`.
void RegisterConsoleRoutes(httplib::Server& http);

}  // namespace keyward
