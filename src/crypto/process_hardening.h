#pragma once
// What `keyward serve` does to the process before it opens anything: files it and RocksDB create
// are private (umask 077: every file 0600, every directory 0700, whoever creates them — RocksDB's
// LOCK, LOG, OPTIONS, MANIFEST, SST and WAL files included, which RocksDB creates 0644), and the
// process cannot dump core (PR_SET_DUMPABLE 0: a crash writes no core file holding keys and
// plaintext, and other processes of the same user cannot ptrace it or read /proc/PID/mem), with
// key buffers also marked MADV_DONTDUMP (crypto/secret_arena.h) for dumps taken anyway (gcore
// as root). `allow_core_dumps` (--allow-core-dumps, for debugging) leaves both off.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace keyward {

absl::Status HardenProcess(bool allow_core_dumps);

// Data dirs written before the umask (RocksDB's files were 0644): every file below `dir` loses
// its group and other bits, every directory too, except g+x on a directory whose group is not
// keyward's (given on purpose to the account mariadbd runs as). Symlinks, and entries of another
// owner (not walked into), are left alone. Returns how many entries changed; errors name the path.
absl::StatusOr<int> TightenDataDirModes(const std::string& dir);

}  // namespace keyward
