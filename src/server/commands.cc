#include "server/commands.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "crypto/sha256.h"
#include "server/connection_limits.h"
#include "server/glob.h"
#include "server/resp_writer.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using Args = std::vector<std::string>;

struct CommandCtx {
  ClusterEndpoint& ep;
  Session& session;
  const Args& args;
  std::string* out;
  bool more = false;  // set by a step of a multi-step command that has more to do
  ClusterStore& store() { return *ep.store; }
};

// How much one step of a multi-step command does: a few milliseconds of storage work.
constexpr size_t kKeysPerStep = 4096;
// KEYS refuses to build a reply beyond this (SCAN walks any number of keys in pages).
constexpr size_t kMaxKeysReplyBytes = 64 << 20;
// SCAN's COUNT is a hint; one call examines at most this many keys so it stays short.
constexpr int64_t kMaxScanCount = 10000;
// DBSIZE and INFO count exactly when the database holds at most this many entries, and
// otherwise answer RocksDB's estimate, so neither ever scans a big cluster.
constexpr size_t kExactCountLimit = 10000;

constexpr char kNotInteger[] = "ERR value is not an integer or out of range";
constexpr char kSyntax[] = "ERR syntax error";

bool ParseInt(std::string_view s, int64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(std::string(s)); }

// Storage failures carry file names, never values; tell the client without internals.
void StorageError(CommandCtx& c, const absl::Status& st) {
  LogWarn("cluster.storage_error", std::string(st.message()), {{"cluster_id", c.ep.cluster_id}});
  resp::Error(c.out, StorageErrorText(st));
}

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

void Ping(CommandCtx& c) {
  if (c.args.size() > 2) {
    resp::Error(c.out, "ERR wrong number of arguments for 'ping' command");
  } else if (c.args.size() == 2) {
    resp::Bulk(c.out, c.args[1]);
  } else {
    resp::SimpleString(c.out, "PONG");
  }
}

void Echo(CommandCtx& c) { resp::Bulk(c.out, c.args[1]); }

void Quit(CommandCtx& c) {
  resp::SimpleString(c.out, "OK");
  c.session.close_after_reply = true;
}

// Failed AUTH attempts a connection gets; the next AUTH closes it. Guessing then costs a new
// connection (and its handshake) every few tries, each logged.
constexpr int kMaxAuthFailures = 3;

void Auth(CommandCtx& c) {
  // AUTH password | AUTH default password
  if (c.args.size() > 3) {
    resp::Error(c.out, kSyntax);
    return;
  }
  if (c.session.auth_failures >= kMaxAuthFailures) {
    resp::Error(c.out, absl::StrCat("ERR too many failed AUTH attempts (", kMaxAuthFailures,
                                    ") on this connection; closing it. Check the cluster's "
                                    "password and connect again"));
    c.session.authenticated = false;
    c.session.close_after_reply = true;
    LogAuthFailure(c.ep.cluster_id, c.session.peer, c.session.auth_failures + 1);
    return;
  }
  bool ok = false;
  if (c.args.size() < 3 || c.args[1] == "default") {  // an unknown user changes nothing
    std::string given = Sha256(c.args.back());
    ok = given.size() == c.ep.password_sha256.size() &&
         CRYPTO_memcmp(given.data(), c.ep.password_sha256.data(), given.size()) == 0;
    c.session.authenticated = ok;
  }
  if (ok) {
    c.session.auth_failures = 0;
    resp::SimpleString(c.out, "OK");
  } else {
    ++c.session.auth_failures;
    LogAuthFailure(c.ep.cluster_id, c.session.peer, c.session.auth_failures);
    resp::Error(c.out, "WRONGPASS invalid username-password pair or user is disabled.");
  }
}

void Select(CommandCtx& c) {
  int64_t db;
  if (!ParseInt(c.args[1], &db)) {
    resp::Error(c.out, kNotInteger);
  } else if (db != 0) {
    resp::Error(c.out, "ERR DB index is out of range (a keyward cluster has database 0 only)");
  } else {
    resp::SimpleString(c.out, "OK");
  }
}

void Get(CommandCtx& c) {
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  if (v->has_value()) {
    resp::Bulk(c.out, (*v)->data);
  } else {
    resp::NullBulk(c.out);
  }
}

void Set(CommandCtx& c) {
  bool nx = false, xx = false, get = false, keepttl = false;
  int64_t expire_at = 0;
  for (size_t i = 3; i < c.args.size(); ++i) {
    std::string opt = Lower(c.args[i]);
    if (opt == "nx") {
      nx = true;
    } else if (opt == "xx") {
      xx = true;
    } else if (opt == "get") {
      get = true;
    } else if (opt == "keepttl") {
      keepttl = true;
    } else if ((opt == "ex" || opt == "px" || opt == "exat" || opt == "pxat") &&
               i + 1 < c.args.size() && expire_at == 0) {
      int64_t n;
      if (!ParseInt(c.args[++i], &n)) {
        resp::Error(c.out, kNotInteger);
        return;
      }
      if (n <= 0 || n > std::numeric_limits<int64_t>::max() / 2000) {
        resp::Error(c.out, "ERR invalid expire time in 'set' command");
        return;
      }
      int64_t now = c.store().NowMs();
      expire_at = opt == "ex"     ? now + n * 1000
                  : opt == "px"   ? now + n
                  : opt == "exat" ? n * 1000
                                  : n;
    } else {
      resp::Error(c.out, kSyntax);
      return;
    }
  }
  if ((nx && xx) || (keepttl && expire_at != 0)) {
    resp::Error(c.out, kSyntax);
    return;
  }
  if (!nx && !xx && !get && !keepttl) {  // a plain SET needs no read first
    STATUS_OR_REPLY(c.store().Put(c.args[1], StoredValue{c.args[2], expire_at}));
    resp::SimpleString(c.out, "OK");
    return;
  }
  STORE_OR_REPLY(old, c.store().Get(c.args[1]));
  bool exists = old->has_value();
  bool write = !(nx && exists) && !(xx && !exists);
  if (write) {
    StoredValue v{c.args[2], expire_at};
    if (keepttl && exists) v.expire_at_ms = (*old)->expire_at_ms;
    STATUS_OR_REPLY(c.store().Put(c.args[1], v));
  }
  if (get) {
    if (exists) {
      resp::Bulk(c.out, (*old)->data);
    } else {
      resp::NullBulk(c.out);
    }
  } else if (write) {
    resp::SimpleString(c.out, "OK");
  } else {
    resp::NullBulk(c.out);
  }
}

void GetDel(CommandCtx& c) {
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  if (!v->has_value()) {
    resp::NullBulk(c.out);
    return;
  }
  STORE_OR_REPLY(d, c.store().Delete(c.args[1]));
  resp::Bulk(c.out, (*v)->data);
}

void Del(CommandCtx& c) {
  int64_t n = 0;
  for (size_t i = 1; i < c.args.size(); ++i) {
    STORE_OR_REPLY(d, c.store().Delete(c.args[i]));
    n += *d ? 1 : 0;
  }
  resp::Integer(c.out, n);
}

void Exists(CommandCtx& c) {
  int64_t n = 0;
  for (size_t i = 1; i < c.args.size(); ++i) {
    STORE_OR_REPLY(v, c.store().Get(c.args[i]));
    n += v->has_value() ? 1 : 0;
  }
  resp::Integer(c.out, n);
}

void MGet(CommandCtx& c) {
  std::vector<std::optional<StoredValue>> values;
  values.reserve(c.args.size() - 1);
  for (size_t i = 1; i < c.args.size(); ++i) {
    STORE_OR_REPLY(v, c.store().Get(c.args[i]));
    values.push_back(*std::move(v));
  }
  resp::ArrayHeader(c.out, values.size());
  for (const auto& v : values) {
    if (v.has_value()) {
      resp::Bulk(c.out, v->data);
    } else {
      resp::NullBulk(c.out);
    }
  }
}

void MSet(CommandCtx& c) {
  if (c.args.size() % 2 != 1) {
    resp::Error(c.out, "ERR wrong number of arguments for 'mset' command");
    return;
  }
  std::vector<std::pair<std::string, StoredValue>> entries;
  for (size_t i = 1; i + 1 < c.args.size(); i += 2)
    entries.push_back({c.args[i], {c.args[i + 1], 0}});
  STATUS_OR_REPLY(c.store().PutMany(entries));
  resp::SimpleString(c.out, "OK");
}

void IncrBy(CommandCtx& c, int64_t delta) {
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  int64_t current = 0;
  if (v->has_value() && !ParseInt((*v)->data, &current)) {
    resp::Error(c.out, kNotInteger);
    return;
  }
  int64_t result;
  if (__builtin_add_overflow(current, delta, &result)) {
    resp::Error(c.out, "ERR increment or decrement would overflow");
    return;
  }
  int64_t expire = v->has_value() ? (*v)->expire_at_ms : 0;
  STATUS_OR_REPLY(c.store().Put(c.args[1], {std::to_string(result), expire}));
  resp::Integer(c.out, result);
}

void Incr(CommandCtx& c) { IncrBy(c, 1); }
void Decr(CommandCtx& c) { IncrBy(c, -1); }
void IncrByCmd(CommandCtx& c, bool negate) {
  int64_t d;
  if (!ParseInt(c.args[2], &d) || (negate && d == std::numeric_limits<int64_t>::min())) {
    resp::Error(c.out, kNotInteger);
    return;
  }
  IncrBy(c, negate ? -d : d);
}

void Append(CommandCtx& c) {
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  StoredValue nv = v->has_value() ? std::move(**v) : StoredValue{};
  nv.data.append(c.args[2]);
  STATUS_OR_REPLY(c.store().Put(c.args[1], nv));
  resp::Integer(c.out, static_cast<int64_t>(nv.data.size()));
}

void StrLen(CommandCtx& c) {
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  resp::Integer(c.out, v->has_value() ? static_cast<int64_t>((*v)->data.size()) : 0);
}

void ExpireCmd(CommandCtx& c, int64_t unit_ms) {
  int64_t n;
  if (!ParseInt(c.args[2], &n) || n > std::numeric_limits<int64_t>::max() / 2000 ||
      n < std::numeric_limits<int64_t>::min() / 2000) {
    resp::Error(c.out, kNotInteger);
    return;
  }
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  if (!v->has_value()) {
    resp::Integer(c.out, 0);
    return;
  }
  if (n <= 0) {  // a non-positive TTL deletes the key, as in Redis
    STORE_OR_REPLY(d, c.store().Delete(c.args[1]));
    resp::Integer(c.out, 1);
    return;
  }
  (*v)->expire_at_ms = c.store().NowMs() + n * unit_ms;
  STATUS_OR_REPLY(c.store().Put(c.args[1], **v));
  resp::Integer(c.out, 1);
}

void TtlCmd(CommandCtx& c, bool millis) {
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  if (!v->has_value()) {
    resp::Integer(c.out, -2);
  } else if ((*v)->expire_at_ms == 0) {
    resp::Integer(c.out, -1);
  } else {
    int64_t left = (*v)->expire_at_ms - c.store().NowMs();
    resp::Integer(c.out, millis ? left : (left + 500) / 1000);
  }
}

void Persist(CommandCtx& c) {
  STORE_OR_REPLY(v, c.store().Get(c.args[1]));
  if (!v->has_value() || (*v)->expire_at_ms == 0) {
    resp::Integer(c.out, 0);
    return;
  }
  (*v)->expire_at_ms = 0;
  STATUS_OR_REPLY(c.store().Put(c.args[1], **v));
  resp::Integer(c.out, 1);
}

// KEYS and SCAN MATCH: matching is linear in the keys scanned, with a factor that grows with the
// pattern; longer patterns than any real use are refused before the scan.
bool GlobPatternSizeOk(CommandCtx& c, const std::string& pattern) {
  if (pattern.size() <= kMaxGlobPatternBytes) return true;
  resp::Error(c.out, absl::StrCat("ERR pattern too long (", pattern.size(), " bytes; the limit is ",
                                  kMaxGlobPatternBytes, ")"));
  return false;
}

void Scan(CommandCtx& c) {
  int64_t cursor;
  if (!ParseInt(c.args[1], &cursor) || cursor < 0) {
    resp::Error(c.out, "ERR invalid cursor");
    return;
  }
  std::string pattern = "*";
  int64_t count = 10;
  for (size_t i = 2; i < c.args.size(); ++i) {
    std::string opt = Lower(c.args[i]);
    if (opt == "match" && i + 1 < c.args.size()) {
      pattern = c.args[++i];
    } else if (opt == "count" && i + 1 < c.args.size()) {
      if (!ParseInt(c.args[++i], &count) || count < 1) {
        resp::Error(c.out, count < 1 ? kSyntax : kNotInteger);
        return;
      }
    } else if (opt == "type" && i + 1 < c.args.size()) {
      ++i;  // every keyward value is a string
    } else {
      resp::Error(c.out, kSyntax);
      return;
    }
  }
  if (!GlobPatternSizeOk(c, pattern)) return;
  std::string after;
  if (cursor != 0) {
    auto it = c.session.scan_cursors.find(static_cast<uint64_t>(cursor));
    if (it == c.session.scan_cursors.end()) {
      resp::Error(c.out, "ERR invalid cursor (cursors are valid on the connection that made them)");
      return;
    }
    after = std::move(it->second);
    c.session.scan_cursors.erase(it);
  }
  std::vector<std::string> keys;
  std::string next;
  STATUS_OR_REPLY(c.store().ScanKeys(
      after, static_cast<size_t>(std::min<int64_t>(count, kMaxScanCount)), &keys, &next));
  uint64_t next_cursor = 0;
  if (!next.empty()) {
    if (c.session.scan_cursors.size() >= 1024)
      c.session.scan_cursors.erase(c.session.scan_cursors.begin());
    next_cursor = c.session.next_cursor++;
    c.session.scan_cursors[next_cursor] = std::move(next);
  }
  GlobPattern glob = GlobPattern::Compile(pattern);
  keys.erase(std::remove_if(keys.begin(), keys.end(),
                            [&](const std::string& k) { return !glob.Matches(k); }),
             keys.end());
  resp::ArrayHeader(c.out, 2);
  resp::Bulk(c.out, std::to_string(next_cursor));
  resp::ArrayHeader(c.out, keys.size());
  for (const auto& k : keys) resp::Bulk(c.out, k);
}

// KEYS runs in steps of kKeysPerStep keys (see CommandProgress); the reply is bounded.
// A stepped command (KEYS, FLUSHDB) that has more keys to visit: it runs again, from `next`, in
// the cluster's next round. False when `next` is empty (the walk reached the end).
bool ContinueAfter(CommandCtx& c, std::string next) {
  if (next.empty()) return false;
  CommandProgress& p = c.session.progress;
  p.active = true;
  p.after = std::move(next);
  c.more = true;
  return true;
}

void Keys(CommandCtx& c) {
  CommandProgress& p = c.session.progress;
  if (!p.active && !GlobPatternSizeOk(c, c.args[1])) return;
  GlobPattern glob = GlobPattern::Compile(c.args[1]);
  std::vector<std::string> chunk;
  std::string next;
  absl::Status st = c.store().ScanKeys(p.after, kKeysPerStep, &chunk, &next);
  if (!st.ok()) {
    p = CommandProgress();
    StorageError(c, st);
    return;
  }
  for (auto& k : chunk) {
    if (!glob.Matches(k)) continue;
    p.matched_bytes += k.size() + 16;
    p.matched.push_back(std::move(k));
  }
  if (p.matched_bytes > kMaxKeysReplyBytes) {
    p = CommandProgress();
    resp::Error(c.out,
                "ERR KEYS would answer more than 64 MiB of key names; use SCAN with MATCH to walk "
                "them in pages");
    return;
  }
  if (ContinueAfter(c, std::move(next))) return;
  resp::ArrayHeader(c.out, p.matched.size());
  for (const auto& k : p.matched) resp::Bulk(c.out, k);
  p = CommandProgress();
}

// Exact when the database holds at most kExactCountLimit entries (a bounded scan), else
// RocksDB's "rocksdb.estimate-num-keys" (overwrites and deletions not yet compacted make it
// approximate). Never a full scan: DBSIZE and INFO stay cheap on a big cluster.
absl::StatusOr<uint64_t> KeyCount(CommandCtx& c) {
  ASSIGN_OR_RETURN(std::optional<uint64_t> exact, c.store().CountKeysUpTo(kExactCountLimit));
  if (exact) return *exact;
  ASSIGN_OR_RETURN(uint64_t estimate, c.store().EstimateKeyCount());
  return std::max<uint64_t>(estimate, kExactCountLimit);
}

void DbSize(CommandCtx& c) {
  STORE_OR_REPLY(n, KeyCount(c));
  resp::Integer(c.out, static_cast<int64_t>(*n));
}

// FLUSHDB deletes kKeysPerStep keys per step, in one write batch each.
void FlushDb(CommandCtx& c) {
  if (c.args.size() == 2 && Lower(c.args[1]) != "async" && Lower(c.args[1]) != "sync") {
    resp::Error(c.out, kSyntax);
    return;
  }
  CommandProgress& p = c.session.progress;
  std::string next;
  absl::Status st = c.store().DeleteKeys(p.after, kKeysPerStep, &next);
  if (!st.ok()) {
    p = CommandProgress();
    StorageError(c, st);
    return;
  }
  if (ContinueAfter(c, std::move(next))) return;
  p = CommandProgress();
  resp::SimpleString(c.out, "OK");
}

void Info(CommandCtx& c) {
  STORE_OR_REPLY(n, KeyCount(c));
  std::string body =
      "# Server\r\nredis_version:7.0.0\r\nkeyward_version:0.1.0\r\nredis_mode:standalone\r\n"
      "# Persistence\r\nloading:0\r\n"
      "# Keyward\r\ncluster_id:" +
      c.ep.cluster_id +
      "\r\nencryption:aes-256-ctr\r\n"
      "data_key_id:" +
      std::to_string(c.store().dictionary().Current()->id) +
      "\r\n"
      "master_key_provider:" +
      c.store().dictionary().wrapped_key().provider + "\r\n" +
      (c.ep.encryption_info ? c.ep.encryption_info() : std::string()) +
      "# Keyspace\r\ndb0:keys=" + std::to_string(*n) + ",expires=0,avg_ttl=0\r\n";
  resp::Bulk(c.out, body);
}

void Client(CommandCtx& c) {
  std::string sub = Lower(c.args[1]);
  if (sub == "setname" && c.args.size() == 3) {
    if (c.args[2].find_first_of(" \n\r") != std::string::npos) {
      resp::Error(c.out, "ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    c.session.name = c.args[2];
    resp::SimpleString(c.out, "OK");
  } else if (sub == "getname" && c.args.size() == 2) {
    if (c.session.name.empty()) {
      resp::NullBulk(c.out);
    } else {
      resp::Bulk(c.out, c.session.name);
    }
  } else if (sub == "id" && c.args.size() == 2) {
    resp::Integer(c.out, static_cast<int64_t>(c.session.id));
  } else if (sub == "setinfo" && c.args.size() == 4) {
    resp::SimpleString(c.out, "OK");
  } else {
    resp::Error(c.out, "ERR unknown subcommand or wrong number of arguments for 'client'");
  }
}

void Command(CommandCtx& c) {
  // Enough for redis-cli and client libraries: COMMAND, COMMAND COUNT, COMMAND DOCS.
  if (c.args.size() >= 2 && Lower(c.args[1]) == "count") {
    resp::Integer(c.out, 0);
  } else {
    resp::ArrayHeader(c.out, 0);
  }
}

void Config(CommandCtx& c) {
  // redis-benchmark asks CONFIG GET save/appendonly; there is nothing to configure from a client.
  if (Lower(c.args[1]) == "get") {
    resp::ArrayHeader(c.out, 0);
  } else {
    resp::Error(c.out, "ERR CONFIG is not available on a keyward cluster; use the keyward API");
  }
}

// SAVE makes everything durable in sorted, compacted (encrypted) files: memtables flushed and
// the write-ahead log retired, the closest match to Redis's snapshot.
void Save(CommandCtx& c) {
  STATUS_OR_REPLY(c.store().Flush());
  STATUS_OR_REPLY(c.store().CompactAll());
  resp::SimpleString(c.out, "OK");
}

struct CommandSpec {
  int arity;  // as in Redis: exact when positive, minimum when negative
  bool needs_auth;
  void (*run)(CommandCtx&);
  bool write = false;  // may write: under durability always the WAL is synced before the reply
};

const std::unordered_map<std::string, CommandSpec>& CommandTable() {
  static const auto* table = new std::unordered_map<std::string, CommandSpec>{
      {"ping", {-1, true, Ping}},
      {"echo", {2, true, Echo}},
      {"quit", {-1, false, Quit}},
      {"auth", {-2, false, Auth}},
      {"select", {2, true, Select}},
      {"get", {2, true, Get}},
      {"set", {-3, true, Set, true}},
      {"getdel", {2, true, GetDel, true}},
      {"del", {-2, true, Del, true}},
      {"exists", {-2, true, Exists}},
      {"mget", {-2, true, MGet}},
      {"mset", {-3, true, MSet, true}},
      {"incr", {2, true, Incr, true}},
      {"decr", {2, true, Decr, true}},
      {"incrby", {3, true, [](CommandCtx& c) { IncrByCmd(c, false); }, true}},
      {"decrby", {3, true, [](CommandCtx& c) { IncrByCmd(c, true); }, true}},
      {"append", {3, true, Append, true}},
      {"strlen", {2, true, StrLen}},
      {"expire", {3, true, [](CommandCtx& c) { ExpireCmd(c, 1000); }, true}},
      {"pexpire", {3, true, [](CommandCtx& c) { ExpireCmd(c, 1); }, true}},
      {"ttl", {2, true, [](CommandCtx& c) { TtlCmd(c, false); }}},
      {"pttl", {2, true, [](CommandCtx& c) { TtlCmd(c, true); }}},
      {"persist", {2, true, Persist, true}},
      {"scan", {-2, true, Scan}},
      {"keys", {2, true, Keys}},
      {"dbsize", {1, true, DbSize}},
      {"flushdb", {-1, true, FlushDb, true}},
      {"info", {-1, true, Info}},
      {"client", {-2, true, Client}},
      {"command", {-1, true, Command}},
      {"config", {-2, true, Config}},
      {"save", {1, true, Save}},
  };
  return *table;
}

// The table by name with a dense id per command (index into CommandNames()), so the RESP server
// counts a command with an array index rather than another lookup.
struct IndexedCommand {
  const CommandSpec* spec;
  size_t id;
};

const std::unordered_map<std::string, IndexedCommand>& Indexed() {
  static const auto* indexed = [] {
    auto* m = new std::unordered_map<std::string, IndexedCommand>;
    const auto& names = CommandNames();
    for (size_t i = 0; i + 1 < names.size(); ++i) {
      m->emplace(names[i], IndexedCommand{&CommandTable().at(names[i]), i});
    }
    return m;
  }();
  return *indexed;
}

}  // namespace

const std::vector<std::string>& CommandNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const auto& [name, spec] : CommandTable()) v->push_back(name);
    std::sort(v->begin(), v->end());
    v->push_back("unknown");
    return v;
  }();
  return *names;
}

CommandResult ExecuteCommandStep(ClusterEndpoint& endpoint, Session& session, const Args& args,
                                 std::string* out) {
  const size_t unknown = CommandNames().size() - 1;
  if (args.empty()) return {unknown};
  std::string name = Lower(args[0]);
  const auto& table = Indexed();
  auto it = table.find(name);
  if (it == table.end()) {
    std::string msg =
        "ERR unknown command '" + args[0].substr(0, 128) + "', with args beginning with: ";
    for (size_t i = 1; i < args.size() && i < 4; ++i) msg += "'" + args[i].substr(0, 64) + "' ";
    resp::Error(out, msg);
    return {unknown};
  }
  const CommandSpec& spec = *it->second.spec;
  int argc = static_cast<int>(args.size());
  if ((spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity)) {
    resp::Error(out, "ERR wrong number of arguments for '" + name + "' command");
    return {it->second.id};
  }
  if (spec.needs_auth && !session.authenticated) {
    resp::Error(out, "NOAUTH Authentication required.");
    return {it->second.id};
  }
  if (!endpoint.store && name != "quit" && name != "auth") {
    session.progress = CommandProgress();  // sealed between two steps: the command ends here
    resp::Error(out, "ERR " + endpoint.unavailable_message);
    return {it->second.id};
  }
  CommandCtx ctx{endpoint, session, args, out};
  spec.run(ctx);
  return {it->second.id, spec.write, ctx.more};
}

size_t ExecuteCommand(ClusterEndpoint& endpoint, Session& session, const Args& args,
                      std::string* out) {
  while (true) {
    CommandResult r = ExecuteCommandStep(endpoint, session, args, out);
    if (!r.more) return r.command;
  }
}

std::string StorageErrorText(const absl::Status& st) {
  if (st.code() == absl::StatusCode::kDataLoss) {
    return "ERR storage corruption detected; the value was not returned";
  }
  if (st.code() == absl::StatusCode::kResourceExhausted) {
    return "ERR disk full: the server's data volume has no space left; this write was not "
           "acknowledged (reads still work, writes succeed again once space is freed)";
  }
  // ClusterStore's own words for a read-only (degraded) cluster: what and what to do.
  if (st.code() == absl::StatusCode::kUnavailable) return "ERR " + std::string(st.message());
  return "ERR storage error; see the server log";
}

}  // namespace keyward
