#include "util/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace keyward {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

std::mutex& SinkMutex() {
  static std::mutex mu;
  return mu;
}
// Guarded by SinkMutex(); set only by tests.
std::function<void(const std::string&)>& Sink() {
  static auto* sink = new std::function<void(const std::string&)>();
  return *sink;
}

std::string Rfc3339Millis(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return buf;
}

}  // namespace

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return std::nullopt;
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

namespace {

// JSON string contents for `text`: quotes, backslashes and control characters escaped, invalid
// UTF-8 (a client's bytes in a message) replaced by U+FFFD. Written by hand rather than through
// nlohmann::json: its dump() goes through a virtual output adapter, and UBSan's check of that
// call needs a free file descriptor — which a warning about running out of them does not have.
void AppendJsonString(std::string& out, std::string_view text) {
  out.push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else {
      size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
      bool ok = len > 0 && i + len <= text.size();
      for (size_t k = 1; ok && k < len; ++k) {
        ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
      }
      if (ok && len == 3) {  // no overlong forms, no surrogates
        unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
        ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
      } else if (ok && len == 4) {
        unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
        ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
      }
      if (ok) {
        out.append(text.data() + i, len);
        i += len;
      } else {
        out += "\xef\xbf\xbd";
        ++i;
      }
    }
  }
  out.push_back('"');
}

void AppendJsonValue(std::string& out, const nlohmann::json& v) {
  if (v.is_string()) {
    AppendJsonString(out, v.get_ref<const std::string&>());
  } else if (v.is_number_unsigned()) {
    out += std::to_string(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    out += std::to_string(v.get<int64_t>());
  } else if (v.is_number_float()) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    out += buf;
  } else if (v.is_boolean()) {
    out += v.get<bool>() ? "true" : "false";
  } else if (v.is_null()) {
    out += "null";
  } else {
    // Arrays and objects: not used by the server's log lines; kept readable if ever passed.
    out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

}  // namespace

std::string FormatLogLine(LogLevel level, std::string_view event, std::string_view msg,
                          const LogFields& fields, int64_t unix_ms) {
  std::string out = "{\"time\":";
  AppendJsonString(out, Rfc3339Millis(unix_ms));
  out += ",\"level\":";
  AppendJsonString(out, LogLevelName(level));
  out += ",\"event\":";
  AppendJsonString(out, event);
  out += ",\"msg\":";
  AppendJsonString(out, msg);
  for (const auto& [name, value] : fields) {
    if (name == "time" || name == "level" || name == "event" || name == "msg") continue;
    out.push_back(',');
    AppendJsonString(out, name);
    out.push_back(':');
    AppendJsonValue(out, value);
  }
  out.push_back('}');
  return out;
}

void Log(LogLevel level, std::string_view event, std::string_view msg, const LogFields& fields) {
  if (!LogEnabled(level)) return;
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::string text = FormatLogLine(level, event, msg, fields, now);
  {
    std::lock_guard<std::mutex> lock(SinkMutex());
    if (Sink()) {
      Sink()(text);
      return;
    }
  }
  text.push_back('\n');
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(STDERR_FILENO, text.data() + off, text.size() - off);
    if (n <= 0) break;  // nowhere to report a failing stderr
    off += static_cast<size_t>(n);
  }
}

void SetLogSinkForTest(std::function<void(const std::string&)> sink) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  Sink() = std::move(sink);
}

}  // namespace keyward
