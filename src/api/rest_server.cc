#include "api/rest_server.h"

#include <httplib.h>
#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "crypto/sha256.h"

namespace keyward {
namespace {

using nlohmann::json;

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
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

std::string CodeName(int http) {
  switch (http) {
    case 400: return "invalid_argument";
    case 401: return "unauthenticated";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 409: return "conflict";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default: return "internal";
  }
}

void SendError(httplib::Response& res, int http, const std::string& message,
               json details = json::object()) {
  res.status = http;
  json body = {{"error", {{"code", CodeName(http)}, {"message", message}, {"details", details}}}};
  res.set_content(body.dump(), "application/json");
}

void SendStatus(httplib::Response& res, const absl::Status& st) {
  int http = HttpStatusFor(st.code());
  // Internal failures are logged in full but answered without internals.
  if (http == 500) {
    fprintf(stderr, "keyward: internal error: %s\n", std::string(st.message()).c_str());
    SendError(res, 500, "internal error; see the server log");
    return;
  }
  SendError(res, http, std::string(st.message()));
}

void SendJson(httplib::Response& res, int http, const json& body) {
  res.status = http;
  res.set_content(body.dump(), "application/json");
}

json ClusterJson(const ClusterView& v) {
  json j = {{"id", v.record.id},
            {"name", v.record.name},
            {"state", v.record.state},
            {"endpoint", v.endpoint},
            {"created_at", v.record.created_at}};
  if (!v.password.empty()) j["password"] = v.password;
  return j;
}

}  // namespace

RestServer::RestServer(RestServerOptions options, ClusterManager& clusters)
    : options_(std::move(options)), clusters_(clusters), http_(std::make_unique<httplib::Server>()) {}

RestServer::~RestServer() { Stop(); }

absl::StatusOr<std::unique_ptr<RestServer>> RestServer::New(RestServerOptions options,
                                                            ClusterManager& clusters) {
  std::unique_ptr<RestServer> s(new RestServer(std::move(options), clusters));
  s->Routes();
  s->http_->set_payload_max_length(s->options_.max_body_bytes);
  if (s->options_.port == 0) {
    s->port_ = s->http_->bind_to_any_port(s->options_.host);
  } else if (s->http_->bind_to_port(s->options_.host, s->options_.port)) {
    s->port_ = s->options_.port;
  } else {
    s->port_ = -1;
  }
  if (s->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", s->options_.host, ":",
                                               s->options_.port,
                                               " (in use?); pick another with --listen"));
  }
  return s;
}

void RestServer::Start() {
  thread_ = std::thread([this] { http_->listen_after_bind(); });
}

void RestServer::Stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

void RestServer::Routes() {
  auto& http = *http_;
  const std::string token_hash = options_.owner_token_sha256;

  http.set_pre_routing_handler([token_hash](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Request-Id", RandomHex(8).value_or("0"));
    if (req.path.rfind("/api/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    std::string auth = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.rfind(kBearer, 0) != 0) {
      SendError(res, 401, "missing bearer token; pass --token or set KEYWARD_TOKEN "
                          "(the owner token is in <data-dir>/owner.token)");
      return httplib::Server::HandlerResponse::Handled;
    }
    std::string given = Sha256(std::string_view(auth).substr(kBearer.size()));
    if (given.size() != token_hash.size() ||
        CRYPTO_memcmp(given.data(), token_hash.data(), given.size()) != 0) {
      SendError(res, 401, "invalid token");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, 500, "internal error; see the server log");
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      SendError(res, 404, "no route " + req.method + " " + req.path);
    } else if (res.status == 413) {
      SendError(res, 413, "request body too large");
    } else {
      SendError(res, res.status, "request failed");
    }
  });

  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });

  http.Post("/api/v1/clusters", [this](const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      SendError(res, 400, "request body must be a JSON object like {\"name\":\"orders\"}");
      return;
    }
    for (const auto& [k, v] : body.items()) {
      if (k != "name") {
        SendError(res, 400, "unknown field '" + k + "'", {{"field", k}});
        return;
      }
    }
    if (!body.contains("name") || !body["name"].is_string()) {
      SendError(res, 400, "field 'name' is required and must be a string", {{"field", "name"}});
      return;
    }
    auto created = clusters_.Create(body["name"].get<std::string>());
    if (!created.ok()) {
      SendStatus(res, created.status());
      return;
    }
    SendJson(res, 201, ClusterJson(*created));
  });

  http.Get("/api/v1/clusters", [this](const httplib::Request&, httplib::Response& res) {
    auto list = clusters_.List();
    if (!list.ok()) {
      SendStatus(res, list.status());
      return;
    }
    json items = json::array();
    for (const auto& v : *list) items.push_back(ClusterJson(v));
    SendJson(res, 200, {{"items", items}});
  });

  http.Get(R"(/api/v1/clusters/([A-Za-z0-9-]+))",
           [this](const httplib::Request& req, httplib::Response& res) {
             auto v = clusters_.Get(req.matches[1]);
             if (!v.ok()) {
               SendStatus(res, v.status());
               return;
             }
             SendJson(res, 200, ClusterJson(*v));
           });

  http.Delete(R"(/api/v1/clusters/([A-Za-z0-9-]+))",
              [this](const httplib::Request& req, httplib::Response& res) {
                std::string id = req.matches[1];
                absl::Status st = clusters_.Delete(id);
                if (!st.ok()) {
                  SendStatus(res, st);
                  return;
                }
                SendJson(res, 200, {{"id", id}, {"state", "deleted"}});
              });
}

}  // namespace keyward
