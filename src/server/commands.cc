#include "server/commands.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "crypto/sha256.h"
#include "server/commands_internal.h"
#include "server/connection_limits.h"
#include "server/resp_writer.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace commands_internal {

void StorageError(CommandCtx& c, const absl::Status& st) {
  LogWarn("cluster.storage_error", std::string(st.message()), {{"cluster_id", c.ep.cluster_id}});
  resp::Error(c.out, StorageErrorText(st));
}

}  // namespace commands_internal

namespace {

using namespace commands_internal;  // NOLINT(google-build-using-namespace): the commands' parts

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
