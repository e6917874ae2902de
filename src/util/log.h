#pragma once
// The server's log: one JSON object per line on stderr, so operators can ship it to anything that
// reads JSON lines (journald, Loki, Elasticsearch) and grep it by field:
//   {"time":"2026-11-29T07:20:00.123Z","level":"warn","event":"cluster.degraded",
//    "msg":"cluster c-… degraded: …","cluster_id":"c-…"}
// `event` is a stable dotted name (what happened), `msg` the human sentence, further fields ids
// and figures. Never a secret: callers pass ids, names and Status messages (which never carry key
// material, tokens or passwords — the project's rule for error texts).
// Thread-safe: each line is formatted whole and written with one write(2).

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keyward {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error"; nullopt for anything else.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
std::string_view LogLevelName(LogLevel level);
// Lines below `level` are dropped (default info; serve --log-level).
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

using LogFields = std::vector<std::pair<std::string, nlohmann::json>>;

void Log(LogLevel level, std::string_view event, std::string_view msg,
         const LogFields& fields = {});
inline void LogInfo(std::string_view event, std::string_view msg, const LogFields& fields = {}) {
  Log(LogLevel::kInfo, event, msg, fields);
}
inline void LogWarn(std::string_view event, std::string_view msg, const LogFields& fields = {}) {
  Log(LogLevel::kWarn, event, msg, fields);
}
inline void LogError(std::string_view event, std::string_view msg, const LogFields& fields = {}) {
  Log(LogLevel::kError, event, msg, fields);
}

// The line Log would write (without its newline), for tests and for the sink below.
std::string FormatLogLine(LogLevel level, std::string_view event, std::string_view msg,
                          const LogFields& fields, int64_t unix_ms);
// Tests capture lines here instead of stderr; nullptr restores stderr.
void SetLogSinkForTest(std::function<void(const std::string&)> sink);

}  // namespace keyward
