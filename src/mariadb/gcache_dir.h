#pragma once
// Galera's gcache (write sets in plaintext) lives in memory-backed /dev/shm, a directory every
// local user can write to. A name there known in advance (kw-<cluster id>-n<i>) could be
// pre-created by another user — their own directory, or a symlink to disk — for Galera to write
// into. So a gcache directory is always made fresh by keyward, and removed without following
// links when its cluster stops, is deleted, or (after a crash) before a node starts again.

#include <string>

#include "absl/status/status.h"
#include "mariadb/os_account.h"

namespace keyward {

// Where Galera clusters' gcaches go (checked memory-backed before a node starts).
inline constexpr char kGaleraGcacheRoot[] = "/dev/shm";

// Makes `path` a new, empty directory, 0700, owned by keyward's euid (the caller hands it to
// `account` after). An existing entry there is refused naming the path — a symlink (never
// followed) or anything that is not a directory owned by keyward's euid or `account` — and a
// leftover directory of ours or the account's (a crash) is removed first, its contents too,
// links removed rather than followed.
absl::Status MakeFreshPrivateDir(const std::string& path, const MariadbOsAccount& account);

// Removes `path` if it is a directory owned by keyward's euid or `account` (links inside are
// removed, never followed); anything else there is left alone and named in the error. OK when
// nothing is there.
absl::Status RemoveOwnDir(const std::string& path, const MariadbOsAccount& account);

// The gcache directories of every node a cluster can have (3), whether it runs or not: for stop
// and crypto-shred. Failures are logged, not returned (best effort on the way out).
void RemoveGaleraGcaches(const std::string& cluster_id, const MariadbOsAccount& account);

}  // namespace keyward
