#include "api/rest_routes.h"

#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "control/idempotency_lease.h"
#include "crypto/sha256.h"
#include "util/clock.h"
#include "util/log.h"

namespace keyward::rest {

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

namespace {

std::string CodeName(int http) {
  switch (http) {
    case 400:
      return "invalid_argument";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 422:
      return "idempotency_key_reused";
    case 429:
      return "rate_limited";
    case 501:
      return "not_implemented";
    case 503:
      return "unavailable";
    default:
      return "internal";
  }
}

}  // namespace

void SendError(httplib::Response& res, int http, const std::string& message) {
  res.status = http;
  json body = {{"error",
                {{"code", CodeName(http)},
                 {"message", message},
                 {"details", {{"request_id", res.get_header_value("X-Request-Id")}}}}}};
  res.set_content(body.dump(), "application/json");
}

void SendStatus(httplib::Response& res, const absl::Status& st) {
  int http = HttpStatusFor(st.code());
  if (http == 500) {  // logged in full, answered without internals
    LogError("http.internal_error", std::string(st.message()),
             {{"request_id", res.get_header_value("X-Request-Id")}});
    SendError(res, 500, "internal error; see the server log (request id in details)");
    return;
  }
  SendError(res, http, std::string(st.message()));
}

namespace {

// Signs page tokens. Per process: a token from before a restart is refused (the client starts
// its listing again), which beats one more secret to keep on disk.
const std::string& PageTokenKey() {
  static const std::string* key = [] {
    auto* k = new std::string(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(k->data()), 32) != 1) abort();
    return k;
  }();
  return *key;
}

std::string PageTokenMac(const std::string& path, int64_t offset) {
  std::string data = absl::StrCat("page:", path, ":", offset);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const std::string& key = PageTokenKey();
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), 16);
}

}  // namespace

std::string Call::NextPageToken(int64_t offset) const {
  return absl::WebSafeBase64Escape(absl::StrCat(offset, ".", PageTokenMac(req.path, offset)));
}

absl::StatusOr<Page> Call::PageParams() const {
  Page page;
  if (req.has_param("page_size")) {
    if (!absl::SimpleAtoi(req.get_param_value("page_size"), &page.limit) || page.limit < 1 ||
        page.limit > 500) {
      return absl::InvalidArgumentError("page_size must be a number from 1 to 500");
    }
  }
  if (req.has_param("page_token")) {
    std::string raw;
    const absl::Status bad = absl::InvalidArgumentError(
        "page_token is not one this server gave out for this list (tokens do not survive a "
        "server restart); list again without page_token");
    if (!absl::WebSafeBase64Unescape(req.get_param_value("page_token"), &raw)) return bad;
    size_t dot = raw.find('.');
    if (dot == std::string::npos ||
        !absl::SimpleAtoi(absl::string_view(raw.data(), dot), &page.offset) || page.offset < 0) {
      return bad;
    }
    std::string mac = raw.substr(dot + 1);
    std::string want = PageTokenMac(req.path, page.offset);
    if (mac.size() != want.size() || CRYPTO_memcmp(mac.data(), want.data(), mac.size()) != 0) {
      return bad;
    }
  }
  return page;
}

std::string PathRegex(const std::string& openapi_path) {
  static const std::regex kParam(R"(\{[a-z_]+\})");
  return std::regex_replace(openapi_path, kParam, "([a-z0-9-]{1,64})");
}

void WithIdempotency(Call& call, MetadataStore& store, const std::function<void()>& run) {
  // How long a duplicate waits for the first request's answer; a cluster create calls a KMS
  // and opens RocksDB, seconds at most. A claim whose server died is taken over after 10 min.
  constexpr auto kWaitForFirst = std::chrono::seconds(20);
  constexpr int64_t kStaleClaimSeconds = 600;
  std::string key = call.req.get_header_value("Idempotency-Key");
  if (key.empty()) {
    run();
    return;
  }
  if (key.size() > 128) {
    SendError(call.res, 400, "Idempotency-Key must be at most 128 characters");
    return;
  }
  const std::string route = absl::StrCat(call.req.method, " ", call.req.path);
  const std::string body_hash = Sha256Hex(call.body);
  const auto give_up = std::chrono::steady_clock::now() + kWaitForFirst;
  int64_t generation = 0;  // of the claim this request holds
  for (;;) {
    auto claim = store.ClaimIdempotent(call.user.id, key, route, body_hash, SystemNowMs() / 1000,
                                       kStaleClaimSeconds);
    if (!call.Check(claim)) return;
    using O = IdempotencyClaim::Outcome;
    if (claim->outcome == O::kClaimed) {
      generation = claim->generation;
      break;
    }
    if (claim->outcome == O::kReplay) {
      call.res.status = claim->response.status;
      call.res.set_content(claim->response.body, "application/json");
      call.res.set_header("Idempotent-Replayed", "true");
      return;
    }
    if (claim->outcome == O::kDifferentBody) {
      SendError(call.res, 422,
                absl::StrCat("Idempotency-Key '", key, "' was already used for ", route,
                             " with a different request body; use a new key for a new request"));
      return;
    }
    if (std::chrono::steady_clock::now() > give_up) {
      SendError(call.res, 409,
                absl::StrCat("a request with Idempotency-Key '", key, "' for ", route,
                             " is still running; retry later to get its answer"));
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  {
    // However long it runs, a live request keeps its claim: never taken over and run twice.
    IdempotencyLease lease(
        store, call.user.id, key, route, generation, [] { return SystemNowMs() / 1000; },
        std::chrono::seconds(kStaleClaimSeconds / 10));
    run();
  }
  bool ok = call.res.status >= 200 && call.res.status < 300;
  json body = ok ? json::parse(call.res.body, nullptr, false) : json();
  if (!ok || body.is_discarded()) {
    // Not an answer worth replaying: the client's retry with the key runs the request again.
    store.ReleaseIdempotent(call.user.id, key, route, generation).IgnoreError();
    return;
  }
  for (const char* secret : {"password", "token"}) {
    if (body.contains(secret)) {
      body.erase(secret);
      body["secret_shown_once"] = true;
    }
  }
  absl::Status st =
      store.FinishIdempotent(call.user.id, key, route, generation, {call.res.status, body.dump()});
  if (!st.ok()) {
    LogError("http.idempotency_not_stored", std::string(st.message()),
             {{"request_id", call.res.get_header_value("X-Request-Id")}});
    store.ReleaseIdempotent(call.user.id, key, route, generation).IgnoreError();
  }
}

std::vector<Route> RouteTable(const RouteDeps& d) {
  std::vector<Route> t;
  AddOpsRoutes(t, d);
  AddProjectRoutes(t, d);
  AddKeyRoutes(t, d);
  AddClusterRoutes(t, d);
  AddBackupRoutes(t, d);
  return t;
}

}  // namespace keyward::rest
