#pragma once
// The Redis commands a cluster serves, executed against its ClusterStore.
// Called on the cluster's serial executor only (server/cluster_executor.h): a cluster's commands
// never run concurrently, which makes read-modify-write commands (INCR, APPEND, SET NX/XX/GET,
// GETDEL) atomic without locks. Different clusters' commands run in parallel on the worker pool.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/durability.h"
#include "storage/cluster_store.h"

namespace keyward {

// What a RESP connection needs from its cluster.
struct ClusterEndpoint {
  std::string cluster_id;
  std::string password_sha256;          // raw SHA-256 of the cluster password
  std::shared_ptr<ClusterStore> store;  // null: sealed (the key is unusable), see below
  std::string unavailable_message;      // what every command answers while sealed
  // The "# Encryption" section of INFO (provider, key, version, check results), rendered by the
  // control plane; may be empty.
  std::function<std::string()> encryption_info;
  // When a write is acknowledged (server/durability.h); set by the control plane at open.
  Durability durability = Durability::kAlways;
};

// A command that runs in steps (KEYS, FLUSHDB) keeps its place here between steps, so one
// cluster's long command never holds a worker for long; the executor runs nothing else of the
// cluster in between, so the command still sees the cluster alone.
struct CommandProgress {
  bool active = false;
  std::string after;                 // the last key examined
  std::vector<std::string> matched;  // KEYS: what it will answer
  size_t matched_bytes = 0;
};

struct Session {
  uint64_t id = 0;
  // Set by the I/O thread when the connection closes: its commands not yet started are dropped
  // (ClusterExecutor); the only field written outside the executor.
  std::atomic<bool> cancelled{false};
  bool authenticated = false;
  bool close_after_reply = false;
  int auth_failures = 0;  // failed AUTH attempts on this connection (rate-limited, see Auth)
  std::string peer;       // "ip:port" of the client, for logs
  std::string name;
  uint64_t next_cursor = 1;
  std::map<uint64_t, std::string> scan_cursors;  // cursor → last key returned
  CommandProgress progress;
};

// The commands a cluster serves, lower case and sorted, then "unknown" for anything else: the
// fixed set of `command` label values in metrics, so a client cannot create new ones.
const std::vector<std::string>& CommandNames();

// The RESP error (without '-' and CRLF) a client gets for a failed storage operation: corruption,
// disk full and a degraded (read-only) cluster say what happened and what to do; anything else
// is generic (the details go to the server log, never to the client).
std::string StorageErrorText(const absl::Status& st);

struct CommandResult {
  size_t command = 0;  // index in CommandNames() (refused and unknown commands too)
  bool wrote = false;  // a write command ran against the store (the executor syncs the WAL)
  bool more = false;   // a step of a multi-step command: call again with the same args
};

// Runs one step of a command and appends its reply to `out` (nothing until the last step).
// Never throws; every failure is a RESP error.
CommandResult ExecuteCommandStep(ClusterEndpoint& endpoint, Session& session,
                                 const std::vector<std::string>& args, std::string* out);

// Runs a command to the end (every step). Returns its index in CommandNames().
size_t ExecuteCommand(ClusterEndpoint& endpoint, Session& session,
                      const std::vector<std::string>& args, std::string* out);

}  // namespace keyward
