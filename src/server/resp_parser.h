#pragma once
// Parser for client requests in the Redis serialization protocol (RESP2): arrays of bulk strings
// ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline commands ("PING\r\n").
// Stateless between calls: the caller keeps unconsumed bytes and calls again when more arrive.
// Never trusts the input: every length is bounded by Limits, every error is a message, not a
// crash. Not thread-safe (one parser per connection).

#include <string>
#include <string_view>
#include <vector>

namespace keyward {

struct RespLimits {
  size_t max_bulk_bytes = 64 << 20;     // one argument
  size_t max_array_elements = 1 << 20;  // arguments of one command
  size_t max_inline_bytes = 64 << 10;   // an inline command line
  // One whole command as sent (headers and arguments). Checked against the lengths the client
  // declares, as each header arrives, so an oversized command is refused before its bytes come.
  size_t max_request_bytes = 256 << 20;

  // What a client may send before AUTH succeeds: enough for `AUTH [default] password` with a
  // password of up to 4 KiB, and nothing more. An unauthenticated client can then never make the
  // server buffer more than a few KiB.
  static RespLimits PreAuth() {
    RespLimits l;
    l.max_bulk_bytes = 4 << 10;
    l.max_array_elements = 8;
    l.max_inline_bytes = 4 << 10;
    l.max_request_bytes = 64 << 10;
    return l;
  }
};

enum class ParseOutcome { kNeedMore, kCommand, kProtocolError };

class RespParser {
 public:
  explicit RespParser(RespLimits limits = {}) : limits_(limits) {}

  // Tries to parse one command from the front of `buf`. On kCommand, `args` holds it and
  // `*consumed` how many bytes it took. On kProtocolError, `error` says why (the connection
  // should be closed after replying). Inline empty lines are skipped (consumed, no command).
  ParseOutcome Parse(std::string_view buf, size_t* consumed, std::vector<std::string>* args,
                     std::string* error) const;

 private:
  ParseOutcome ParseArray(std::string_view buf, size_t* consumed, std::vector<std::string>* args,
                          std::string* error) const;
  ParseOutcome ParseInline(std::string_view buf, size_t* consumed, std::vector<std::string>* args,
                           std::string* error) const;
  RespLimits limits_;
};

}  // namespace keyward
