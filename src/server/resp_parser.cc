#include "server/resp_parser.h"

#include <charconv>
#include <string>

#include "absl/container/inlined_vector.h"

namespace keyward {
namespace {

// Reads a decimal integer line ending in CRLF starting at `pos`. Returns false if the line is
// not complete yet; sets `bad` if it is complete but not a valid number.
bool ReadIntLine(std::string_view buf, size_t pos, long long* value, size_t* next, bool* bad) {
  size_t crlf = buf.find("\r\n", pos);
  if (crlf == std::string_view::npos) {
    // A length line longer than 32 bytes can never be valid.
    *bad = buf.size() - pos > 32;
    return false;
  }
  const char* first = buf.data() + pos;
  const char* last = buf.data() + crlf;
  auto [ptr, ec] = std::from_chars(first, last, *value);
  // Over 32 bytes is refused whole too (leading zeros), exactly as when it arrives without its
  // CRLF yet: how the network cut the bytes must not change the answer (resp_parser_fuzz).
  *bad = ec != std::errc() || ptr != last || first == last || crlf - pos > 32;
  *next = crlf + 2;
  return true;
}

}  // namespace

ParseOutcome RespParser::Parse(std::string_view buf, size_t* consumed,
                               std::vector<std::string>* args, std::string* error) const {
  *consumed = 0;
  args->clear();
  if (buf.empty()) return ParseOutcome::kNeedMore;
  if (buf[0] == '*') return ParseArray(buf, consumed, args, error);
  return ParseInline(buf, consumed, args, error);
}

ParseOutcome RespParser::ParseArray(std::string_view buf, size_t* consumed,
                                    std::vector<std::string>* args, std::string* error) const {
  long long count = 0;
  size_t pos = 0;
  bool bad = false;
  if (!ReadIntLine(buf, 1, &count, &pos, &bad)) {
    if (bad) *error = "Protocol error: invalid multibulk length";
    return bad ? ParseOutcome::kProtocolError : ParseOutcome::kNeedMore;
  }
  if (bad) {
    *error = "Protocol error: invalid multibulk length";
    return ParseOutcome::kProtocolError;
  }
  if (count > static_cast<long long>(limits_.max_array_elements)) {
    *error = "Protocol error: invalid multibulk length (" + std::to_string(count) +
             " arguments declared; the limit here is " +
             std::to_string(limits_.max_array_elements) + ")";
    return ParseOutcome::kProtocolError;
  }
  if (count <= 0) {  // "*0" and "*-1" are empty requests: skip them like Redis does
    *consumed = pos;
    return ParseOutcome::kCommand;
  }
  // Check completeness before copying anything, so slow large arguments cost no copies.
  // Inline storage: most commands have a few arguments, and a heap allocation per command
  // showed in profiles of pipelined GET/SET.
  absl::InlinedVector<std::pair<size_t, size_t>, 8> spans;
  spans.reserve(static_cast<size_t>(count < 64 ? count : 64));
  for (long long i = 0; i < count; ++i) {
    if (pos >= buf.size()) return ParseOutcome::kNeedMore;
    if (buf[pos] != '$') {
      *error = std::string("Protocol error: expected '$', got '") + buf[pos] + "'";
      return ParseOutcome::kProtocolError;
    }
    long long len = 0;
    size_t data = 0;
    if (!ReadIntLine(buf, pos + 1, &len, &data, &bad)) {
      if (bad) *error = "Protocol error: invalid bulk length";
      return bad ? ParseOutcome::kProtocolError : ParseOutcome::kNeedMore;
    }
    if (bad || len < 0) {
      *error = "Protocol error: invalid bulk length";
      return ParseOutcome::kProtocolError;
    }
    if (static_cast<unsigned long long>(len) > limits_.max_bulk_bytes) {
      *error = "Protocol error: invalid bulk length (" + std::to_string(len) +
               " bytes declared; the limit here is " + std::to_string(limits_.max_bulk_bytes) + ")";
      return ParseOutcome::kProtocolError;
    }
    size_t end = data + static_cast<size_t>(len);
    if (end + 2 > limits_.max_request_bytes) {
      *error = "Protocol error: request too big (over " +
               std::to_string(limits_.max_request_bytes) + " bytes declared)";
      return ParseOutcome::kProtocolError;
    }
    if (buf.size() < end + 2) return ParseOutcome::kNeedMore;
    if (buf[end] != '\r' || buf[end + 1] != '\n') {
      *error = "Protocol error: bulk string not terminated by CRLF";
      return ParseOutcome::kProtocolError;
    }
    spans.emplace_back(data, static_cast<size_t>(len));
    pos = end + 2;
  }
  args->reserve(spans.size());
  for (const auto& [start, len] : spans) args->emplace_back(buf.substr(start, len));
  *consumed = pos;
  return ParseOutcome::kCommand;
}

ParseOutcome RespParser::ParseInline(std::string_view buf, size_t* consumed,
                                     std::vector<std::string>* args, std::string* error) const {
  size_t nl = buf.find('\n');
  if (nl == std::string_view::npos) {
    if (buf.size() > limits_.max_inline_bytes) {
      *error = "Protocol error: too big inline request";
      return ParseOutcome::kProtocolError;
    }
    return ParseOutcome::kNeedMore;
  }
  std::string_view line = buf.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::string arg;
    if (line[i] == '"' || line[i] == '\'') {
      char quote = line[i++];
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\' && quote == '"' && i < line.size()) {
          char e = line[i++];
          arg.push_back(e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e);
        } else if (c == quote) {
          closed = true;
          break;
        } else {
          arg.push_back(c);
        }
      }
      if (!closed || (i < line.size() && line[i] != ' ' && line[i] != '\t')) {
        *error = "Protocol error: unbalanced quotes in request";
        return ParseOutcome::kProtocolError;
      }
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') arg.push_back(line[i++]);
    }
    args->push_back(std::move(arg));
  }
  *consumed = nl + 1;
  return ParseOutcome::kCommand;
}

}  // namespace keyward
