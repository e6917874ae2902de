#include "cloud/http_client.h"

#include <curl/curl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "crypto/random.h"

namespace keyward {
namespace {

struct BodySink {
  std::string* body;
  size_t cap;
  bool over = false;
};

// A body past the request's cap is cut off (curl then fails the transfer) instead of growing
// without bound.
size_t OnBody(char* data, size_t size, size_t n, void* out) {
  auto* sink = static_cast<BodySink*>(out);
  if (sink->body->size() + size * n > sink->cap) {
    sink->over = true;
    return 0;
  }
  sink->body->append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
  }
  return size * n;
}

bool Retryable(int status) { return status == 429 || status == 408 || status >= 500; }

// libcurl's own buffers hold unwrapped keys on their way to us (its receive buffer, decoded
// chunks): every block it frees is zeroed first, as our own C++ allocations are (wipe_on_free).
void WipeAndFree(void* p) {
  if (p == nullptr) return;
  OPENSSL_cleanse(p, malloc_usable_size(p));
  free(p);
}
void* WipingRealloc(void* p, size_t size) {
  if (p == nullptr) return malloc(size);
  if (size == 0) {
    WipeAndFree(p);
    return nullptr;
  }
  size_t old = malloc_usable_size(p);
  if (size <= old) return p;  // shrinking in place: nothing is left behind
  void* q = malloc(size);
  if (q == nullptr) return nullptr;  // realloc's contract: the old block stays valid
  memcpy(q, p, old);
  WipeAndFree(p);
  return q;
}

// TLS: OpenSSL zeroes a record's plaintext in its buffers once it has been read.
CURLcode CleansePlaintext(CURL*, void* ssl_ctx, void*) {
  SSL_CTX_set_options(static_cast<SSL_CTX*>(ssl_ctx), SSL_OP_CLEANSE_PLAINTEXT);
  return CURLE_OK;
}

}  // namespace

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  static const bool init = [] {
    return curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, WipeAndFree, WipingRealloc, strdup,
                                calloc) == CURLE_OK;
  }();
  (void)init;
  if (!options_.sleep)
    options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

absl::StatusOr<HttpResponse> HttpClient::SendOnce(const HttpRequest& r) const {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  HttpResponse out;
  curl_slist* headers = nullptr;
  for (const auto& h : r.headers) headers = curl_slist_append(headers, h.c_str());
  curl_slist* connect_to = nullptr;
  if (!options_.connect_to.empty())
    connect_to = curl_slist_append(nullptr, ("::" + options_.connect_to).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  if (r.method != "GET" && r.method != "DELETE") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, r.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (connect_to) curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect_to);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, CleansePlaintext);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.request_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  out.body.reserve(8192);  // most replies fit: fewer reallocations leaving copies behind
  BodySink sink{&out.body, r.max_response_bytes};
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out.headers);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_slist_free_all(connect_to);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    // The URL names the host and path only; request bodies (which may hold key material) never
    // reach a message.
    std::string where = r.url.substr(0, r.url.find('?'));
    if (sink.over) {
      // Not retried: the same request brings the same reply.
      return absl::ResourceExhaustedError(absl::StrCat("the reply from ", where, " is larger than ",
                                                       r.max_response_bytes, " bytes; refused"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot reach ", where, ": ", curl_easy_strerror(rc)));
  }
  out.status = static_cast<int>(status);
  return out;
}

absl::StatusOr<HttpResponse> HttpClient::Send(const HttpRequest& request) const {
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<HttpResponse> last = absl::UnavailableError("no attempt made");
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    last = SendOnce(request);
    bool retry = last.ok() ? Retryable(last->status) : absl::IsUnavailable(last.status());
    if (!retry || attempt == options_.max_attempts) return last;
    // Exponential backoff with full jitter; Retry-After (seconds) wins when the server sends it.
    auto cap = options_.base_backoff * (1 << std::min(attempt - 1, 6));
    uint32_t r = 0;
    FillRandom(&r, sizeof(r)).IgnoreError();
    int64_t half = cap.count() / 2;
    std::chrono::milliseconds wait(half +
                                   static_cast<int64_t>(r % static_cast<uint32_t>(half + 1)));
    if (last.ok()) {
      auto it = last->headers.find("retry-after");
      int seconds = 0;
      if (it != last->headers.end() && absl::SimpleAtoi(it->second, &seconds) && seconds >= 0) {
        wait = std::chrono::milliseconds(std::min(seconds, 60) * 1000);
      }
    }
    if (std::chrono::steady_clock::now() + wait - start > options_.max_total) return last;
    options_.sleep(wait);
  }
  return last;
}

std::string FormEncode(const std::map<std::string, std::string>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    for (const std::string* s : {&k, &v}) {
      for (unsigned char c : *s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
          out += static_cast<char>(c);
        } else {
          out += absl::StrFormat("%%%02X", c);
        }
      }
      if (s == &k) out += '=';
    }
  }
  return out;
}

}  // namespace keyward
