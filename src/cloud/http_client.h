#pragma once
// HTTPS for keyward's cloud clients (Key Vault, Entra ID, Blob Storage), on libcurl: TLS always
// verified (custom CA bundle for private endpoints and tests), timeouts, and bounded retries with
// exponential backoff and jitter that honour Retry-After. 429, 5xx and connection failures are
// retried; other statuses are returned to the caller to interpret. Thread-safe (a curl handle per
// request).

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  // Larger response bodies are refused (Unavailable). KMS and token replies are a few KiB and keep
  // the default; a backup download raises it for that request only.
  size_t max_response_bytes = kDefaultMaxResponseBytes;
  static constexpr size_t kDefaultMaxResponseBytes = 1 << 20;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct HttpClientOptions {
  std::string ca_file;  // empty: the system's CA store
  std::string
      connect_to;  // "127.0.0.1:PORT": every host is reached there (emulator, private endpoint)
  long connect_timeout_ms = 5000;
  long request_timeout_ms = 15000;
  int max_attempts = 4;
  std::chrono::milliseconds max_total{30000};
  std::chrono::milliseconds base_backoff{200};
  std::function<void(std::chrono::milliseconds)> sleep;  // injectable for tests
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  virtual ~HttpClient() = default;
  // Sends with retries. Errors only when no HTTP answer came back (or retries ran out on
  // 429/5xx, in which case the last response is returned with its status). Response bodies over
  // request.max_response_bytes are refused (Unavailable). Virtual so tests can answer without a
  // network.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) const;

  const HttpClientOptions& options() const { return options_; }

 private:
  absl::StatusOr<HttpResponse> SendOnce(const HttpRequest& request) const;
  HttpClientOptions options_;
};

// Percent-encodes for application/x-www-form-urlencoded.
std::string FormEncode(const std::map<std::string, std::string>& fields);

}  // namespace keyward
