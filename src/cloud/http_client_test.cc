#include "cloud/http_client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"

namespace keyward {
namespace {

// A plain-HTTP server on 127.0.0.1 answering every GET with `size` bytes.
class BigReplyServer {
 public:
  explicit BigReplyServer(size_t size) {
    server_.Get("/.*", [this, size](const httplib::Request&, httplib::Response& res) {
      ++hits_;
      res.set_content(std::string(size, 'x'), "application/octet-stream");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~BigReplyServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_, "/x"); }
  int hits() const { return hits_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> hits_{0};
};

TEST(HttpClientTest, KmsSizedCapByDefaultRaisedPerRequest) {
  BigReplyServer server((1 << 20) + 28);  // one backup chunk
  HttpClient http(HttpClientOptions{});
  HttpRequest r;
  r.url = server.url();
  EXPECT_EQ(r.max_response_bytes, size_t{1} << 20);  // KMS and token replies keep 1 MiB
  auto refused = http.Send(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("larger than 1048576 bytes"), std::string::npos);
  EXPECT_EQ(server.hits(), 1);  // an oversized reply is not retried

  r.max_response_bytes = 2 << 20;
  auto ok = http.Send(r);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body.size(), (1u << 20) + 28);
}

}  // namespace
}  // namespace keyward
