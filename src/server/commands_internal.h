#pragma once
// Internals shared by the command implementations (commands.cc: the table, dispatch and the
// server and connection commands; commands_string.cc: string and key commands;
// commands_keyspace.cc: SCAN, KEYS, DBSIZE, FLUSHDB). Only those files include this. Every
// command runs on its cluster's executor (server/commands.h).

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "server/commands.h"

namespace keyward::commands_internal {

using Args = std::vector<std::string>;

struct CommandCtx {
  ClusterEndpoint& ep;
  Session& session;
  const Args& args;
  std::string* out;
  bool more = false;  // set by a step of a multi-step command that has more to do
  ClusterStore& store() { return *ep.store; }
};

inline constexpr char kNotInteger[] = "ERR value is not an integer or out of range";
inline constexpr char kSyntax[] = "ERR syntax error";

inline bool ParseInt(std::string_view s, int64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

inline std::string Lower(std::string_view s) { return absl::AsciiStrToLower(std::string(s)); }

// Storage failures carry file names, never values; tell the client without internals.
void StorageError(CommandCtx& c, const absl::Status& st);

#define STORE_OR_REPLY(var, expr)  \
  auto var = (expr);               \
  if (!var.ok()) {                 \
    StorageError(c, var.status()); \
    return;                        \
  }

#define STATUS_OR_REPLY(expr) \
  do {                        \
    absl::Status s_ = (expr); \
    if (!s_.ok()) {           \
      StorageError(c, s_);    \
      return;                 \
    }                         \
  } while (0)

// commands_string.cc
void Get(CommandCtx& c);
void Set(CommandCtx& c);
void GetDel(CommandCtx& c);
void Del(CommandCtx& c);
void Exists(CommandCtx& c);
void MGet(CommandCtx& c);
void MSet(CommandCtx& c);
void Incr(CommandCtx& c);
void Decr(CommandCtx& c);
void IncrByCmd(CommandCtx& c, bool negate);
void Append(CommandCtx& c);
void StrLen(CommandCtx& c);
void ExpireCmd(CommandCtx& c, int64_t unit_ms);
void TtlCmd(CommandCtx& c, bool millis);
void Persist(CommandCtx& c);

// commands_keyspace.cc
void Scan(CommandCtx& c);
void Keys(CommandCtx& c);
void DbSize(CommandCtx& c);
void FlushDb(CommandCtx& c);
absl::StatusOr<uint64_t> KeyCount(CommandCtx& c);

}  // namespace keyward::commands_internal
