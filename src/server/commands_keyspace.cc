// The commands that walk the keyspace: SCAN, KEYS, DBSIZE, FLUSHDB (and the key count INFO
// shows). KEYS and FLUSHDB run in steps so one cluster's long command never holds a worker long.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/commands_internal.h"
#include "server/glob.h"
#include "server/resp_writer.h"
#include "util/status_macros.h"

namespace keyward::commands_internal {

namespace {

// How much one step of a multi-step command does: a few milliseconds of storage work.
constexpr size_t kKeysPerStep = 4096;
// KEYS refuses to build a reply beyond this (SCAN walks any number of keys in pages).
constexpr size_t kMaxKeysReplyBytes = 64 << 20;
// SCAN's COUNT is a hint; one call examines at most this many keys so it stays short.
constexpr int64_t kMaxScanCount = 10000;
// DBSIZE and INFO count exactly when the database holds at most this many entries, and
// otherwise answer RocksDB's estimate, so neither ever scans a big cluster.
constexpr size_t kExactCountLimit = 10000;

// KEYS and SCAN MATCH: matching is linear in the keys scanned, with a factor that grows with the
// pattern; longer patterns than any real use are refused before the scan.
bool GlobPatternSizeOk(CommandCtx& c, const std::string& pattern) {
  if (pattern.size() <= kMaxGlobPatternBytes) return true;
  resp::Error(c.out, absl::StrCat("ERR pattern too long (", pattern.size(), " bytes; the limit is ",
                                  kMaxGlobPatternBytes, ")"));
  return false;
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

}  // namespace

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

}  // namespace keyward::commands_internal
