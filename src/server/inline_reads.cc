#include "server/inline_reads.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "server/resp_writer.h"

namespace keyward {

namespace {

enum class Kind { kGet, kMGet, kExists, kStrLen, kTtl, kPTtl, kPing, kOther };

Kind KindOf(const std::vector<std::string>& args) {
  const std::string& n = args[0];
  const size_t argc = args.size();
  // The arities are the command table's (commands.cc): a wrong one goes to the executor, which
  // answers the error.
  switch (n.size()) {
    case 3:
      if (argc == 2 && absl::EqualsIgnoreCase(n, "get")) return Kind::kGet;
      if (argc == 2 && absl::EqualsIgnoreCase(n, "ttl")) return Kind::kTtl;
      break;
    case 4:
      if (argc >= 2 && argc <= kMaxInlineKeys + 1 && absl::EqualsIgnoreCase(n, "mget")) {
        return Kind::kMGet;
      }
      if (argc == 2 && absl::EqualsIgnoreCase(n, "pttl")) return Kind::kPTtl;
      if (argc == 1 && absl::EqualsIgnoreCase(n, "ping")) return Kind::kPing;
      break;
    case 6:
      if (argc >= 2 && argc <= kMaxInlineKeys + 1 && absl::EqualsIgnoreCase(n, "exists")) {
        return Kind::kExists;
      }
      if (argc == 2 && absl::EqualsIgnoreCase(n, "strlen")) return Kind::kStrLen;
      break;
    default:
      break;
  }
  return Kind::kOther;
}

size_t IndexOf(const char* name) {
  const auto& names = CommandNames();
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

}  // namespace

bool AnswerFromMemory(ClusterEndpoint& endpoint, const Session& session,
                      const std::vector<std::string>& args, std::string* out, size_t* command) {
  static const size_t kIndex[] = {IndexOf("get"),    IndexOf("mget"), IndexOf("exists"),
                                  IndexOf("strlen"), IndexOf("ttl"),  IndexOf("pttl"),
                                  IndexOf("ping")};
  if (args.empty() || !session.authenticated || !endpoint.store) return false;
  const Kind kind = KindOf(args);
  if (kind == Kind::kOther) return false;
  *command = kIndex[static_cast<int>(kind)];
  ClusterStore& store = *endpoint.store;
  if (kind == Kind::kPing) {
    resp::SimpleString(out, "PONG");
    return true;
  }
  if (kind == Kind::kGet || kind == Kind::kStrLen || kind == Kind::kTtl || kind == Kind::kPTtl) {
    std::optional<StoredValue> v;
    if (!store.GetIfCached(args[1], &v)) return false;
    switch (kind) {
      case Kind::kGet:
        if (v) {
          resp::Bulk(out, v->data);
        } else {
          resp::NullBulk(out);
        }
        break;
      case Kind::kStrLen:
        resp::Integer(out, v ? static_cast<int64_t>(v->data.size()) : 0);
        break;
      default:  // TTL, PTTL: as commands.cc's TtlCmd
        if (!v) {
          resp::Integer(out, -2);
        } else if (v->expire_at_ms == 0) {
          resp::Integer(out, -1);
        } else {
          int64_t left = v->expire_at_ms - store.NowMs();
          resp::Integer(out, kind == Kind::kPTtl ? left : (left + 500) / 1000);
        }
    }
    return true;
  }
  // MGET, EXISTS: every key from memory, or none answered here.
  std::vector<std::optional<StoredValue>> values(args.size() - 1);
  for (size_t i = 1; i < args.size(); ++i) {
    if (!store.GetIfCached(args[i], &values[i - 1])) return false;
  }
  if (kind == Kind::kExists) {
    resp::Integer(out, std::count_if(values.begin(), values.end(),
                                     [](const auto& v) { return v.has_value(); }));
    return true;
  }
  resp::ArrayHeader(out, values.size());
  for (const auto& v : values) {
    if (v) {
      resp::Bulk(out, v->data);
    } else {
      resp::NullBulk(out);
    }
  }
  return true;
}

}  // namespace keyward
