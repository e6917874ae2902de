#include "util/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
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

std::string FormatLogLine(LogLevel level, std::string_view event, std::string_view msg,
                          const LogFields& fields, int64_t unix_ms) {
  nlohmann::ordered_json line;
  line["time"] = Rfc3339Millis(unix_ms);
  line["level"] = std::string(LogLevelName(level));
  line["event"] = std::string(event);
  line["msg"] = std::string(msg);
  for (const auto& [name, value] : fields) {
    if (name != "time" && name != "level" && name != "event" && name != "msg") line[name] = value;
  }
  // Invalid UTF-8 (a client's bytes in a message) is replaced, never a throw.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
