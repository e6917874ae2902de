#pragma once
// The on-disk state of a multi-node (Galera) mariadb cluster that keyward keeps between starts,
// and the choice of the node a stopped cluster bootstraps from.
//
//  - galera.ports (in the cluster's mariadb directory, 0600): one line per node,
//    "<sql> <galera> <ist> <sst>". Node 0's SQL port is the cluster's recorded port (the
//    endpoint the API names first); the other nodes' SQL ports are what the API lists after it,
//    so they are kept across pause/resume and keyward restarts.
//  - grastate.dat (Galera's, in each node's data dir): the node's last committed position
//    (seqno; -1 after a crash, when `mariadbd --wsrep-recover` finds it from InnoDB) and whether
//    it is safe to bootstrap from. A stopped cluster starts again from its most advanced node
//    (highest seqno), which becomes safe_to_bootstrap; the others join it (IST/SST), so no
//    committed transaction is lost.
//
// Thread-safe: pure functions and file reads/writes.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mariadb/galera_options.h"

namespace keyward {

// A cluster has 1 node (plain mariadbd) or kGaleraNodes (Galera).
inline constexpr int kGaleraNodes = 3;

// galera.ports: reads it (NotFound when missing; DataLoss naming the file when malformed).
absl::StatusOr<std::vector<GaleraNode>> LoadGaleraPorts(const std::string& path);
absl::Status SaveGaleraPorts(const std::string& path, const std::vector<GaleraNode>& nodes);

struct GaleraState {
  bool present = false;  // grastate.dat exists (a node that never joined has none)
  std::string uuid;
  int64_t seqno = -1;
  bool safe_to_bootstrap = false;
};

// Parses grastate.dat's text ("uuid: …", "seqno: …", "safe_to_bootstrap: …").
GaleraState ParseGaleraState(const std::string& text);
// Reads data_dir/grastate.dat; present=false when it does not exist.
absl::StatusOr<GaleraState> ReadGaleraState(const std::string& data_dir);
// Rewrites data_dir/grastate.dat with safe_to_bootstrap: 1 (keeping its other lines).
absl::Status MarkSafeToBootstrap(const std::string& data_dir);
// The seqno in mariadbd --wsrep-recover's output ("WSREP: Recovered position: uuid:seqno"), or
// nullopt when absent.
std::optional<int64_t> ParseRecoveredSeqno(const std::string& output);

// The node to bootstrap from: the highest seqno; on a tie the one marked safe_to_bootstrap, then
// the lowest index. nullopt when no node has a usable state (none present).
std::optional<size_t> ChooseBootstrapNode(const std::vector<GaleraState>& states);

}  // namespace keyward
