// The string and key commands: GET, SET, GETDEL, DEL, EXISTS, MGET, MSET, INCR/DECR[BY],
// APPEND, STRLEN, [P]EXPIRE, [P]TTL, PERSIST.
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "server/commands_internal.h"
#include "server/resp_writer.h"

namespace keyward::commands_internal {

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

}  // namespace keyward::commands_internal
