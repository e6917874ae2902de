#pragma once
// The Redis commands a cluster serves, executed against its ClusterStore.
// Called on the event-loop thread only; one command runs at a time per server, which makes
// read-modify-write commands (INCR, APPEND, SET NX) atomic without locks.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

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

struct Session {
  uint64_t id = 0;
  bool authenticated = false;
  bool close_after_reply = false;
  int auth_failures = 0;  // failed AUTH attempts on this connection (rate-limited, see Auth)
  std::string peer;       // "ip:port" of the client, for logs
  std::string name;
  uint64_t next_cursor = 1;
  std::map<uint64_t, std::string> scan_cursors;  // cursor → last key returned
};

// The commands a cluster serves, lower case and sorted, then "unknown" for anything else: the
// fixed set of `command` label values in metrics, so a client cannot create new ones.
const std::vector<std::string>& CommandNames();

// Runs one command and appends its reply to `out`. Never throws; every failure is a RESP error.
// Returns the command's index in CommandNames() (refused and unknown commands too).
size_t ExecuteCommand(ClusterEndpoint& endpoint, Session& session,
                      const std::vector<std::string>& args, std::string* out);

}  // namespace keyward
