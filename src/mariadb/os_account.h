#pragma once
// The unprivileged OS account mariadbd (and mariadb-backup, the bootstrap) runs as when keyward
// serve runs as root: a MariaDB bug or a malicious SQL payload that gets code running inside
// mariadbd then holds that account's rights, not root's, and cannot read keyward's escrow key,
// owner token, metadata, TLS keys or other clusters' files.
//
// What runs as the account: only processes keyward forks for a mariadb cluster, which switch to
// it between fork and exec (DropToAccountInChild). keyward itself never changes its ids.
// What the account may touch: the cluster's mariadb/data, tmp and run/files dirs (its own, 0700),
// and the directories on the way there (searchable through the account's group only, g+x).
//
// Thread-safe: pure functions, except the file-system ones, which act on the paths given.

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace keyward {

// The default account (scripts/bootstrap creates it; serve --mariadb-user overrides).
inline constexpr char kDefaultMariadbUser[] = "keyward-mariadb";

struct MariadbOsAccount {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;  // the account's primary group (its own, from useradd --system)
  // false: the processes run as keyward's own uid (keyward serve is not root), as before.
  bool drop = false;
};

// The account to run mariadb processes as: when keyward's effective uid is root, `name` from the
// password database (NotFound naming the useradd command when it does not exist; root itself is
// refused); otherwise keyward's own uid (drop = false), and `name` must be empty or that user.
absl::StatusOr<MariadbOsAccount> ResolveMariadbAccount(const std::string& name);

// In a forked child, before exec (async-signal-safe: raw system calls only): supplementary groups
// dropped, real/effective/saved gid then uid set to the account's, and checked (getres*id, and
// setuid(0) must fail). Returns 0, or the errno of the step that failed (EPERM when a check
// fails). A no-op returning 0 when !account.drop.
int DropToAccountInChild(const MariadbOsAccount& account);

// `dir` (created when missing) becomes the account's: owner uid:gid, mode 0700; with
// `recursive`, everything inside too (cluster data written by an older keyward as root). Walks
// with directory descriptors and never follows a symbolic link, so the account cannot redirect
// the change elsewhere by swapping a directory for a link mid-walk. No-op when !account.drop.
absl::Status GiveDirToAccount(const std::string& dir, const MariadbOsAccount& account,
                              bool recursive);

// Makes `dir` (which must lie inside `top`, both keyward's own) reachable for the account: `dir`
// and every directory from `top` down to it get group = the account's group and g+x only (no
// read, no write; others still nothing); directories above `top` must already be searchable by
// the account (FailedPrecondition naming the directory and the fix otherwise). No-op when
// !account.drop.
absl::Status LetAccountReach(const std::string& top, const std::string& dir,
                             const MariadbOsAccount& account);

// FailedPrecondition naming the blocking directory or file unless the account can search every
// directory up to `path` and read `path` (the key plugin mariadbd loads). OK when !account.drop.
absl::Status CheckAccountCanRead(const std::string& path, const MariadbOsAccount& account);

// A copy of keyward's file `src` (a TLS certificate or key mariadbd must read) at `dst`, owned by
// keyward with the account's group, 0640: mariadbd reads it while keyward's own copy stays 0600.
// Returns the path to give mariadbd: `dst`, or `src` itself when !account.drop.
absl::StatusOr<std::string> ShareFileWithAccount(const std::string& src, const std::string& dst,
                                                 const MariadbOsAccount& account);

}  // namespace keyward
