#pragma once
// How keyward runs one cluster's mariadbd: the option file (every at-rest encryption option
// MariaDB 10.11 has, keys from the keyward_key_management plugin), the command line, and the
// data directory's initialisation. Starting, supervising and stopping the process live elsewhere
// (the cluster runtime); this file only describes it.
//
// Everything MariaDB writes under data_dir is encrypted with the cluster's keys except what
// MariaDB cannot encrypt: Aria's transaction log (aria_log.*, MDEV-8587: hence
// enforce_storage_engine=InnoDB so user tables never live in Aria), table definitions (.frm),
// the binlog index and InnoDB's table-name metadata; the system tables (accounts, grants,
// timezone and help data) are Aria tables whose changes also pass through aria_log.*.
//
// Thread-safe: pure functions, except InitializeDataDir which forks mariadbd --bootstrap.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "crypto/secret_bytes.h"
#include "mariadb/os_account.h"

namespace keyward {

class MariadbKeyService;

struct MariadbInstanceSpec {
  std::string data_dir;  // MariaDB's datadir (created 0700 by InitializeDataDir)
  std::string run_dir;   // option file, client socket, pid file (0700)
  std::string tmp_dir;   // temporary files; empty → run_dir + "/tmp"
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string plugin_dir;  // the directory holding keyward_key_management.so
  std::string key_socket;  // MariadbKeyService's socket
  // TLS for client connections; all three or none.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  std::string mariadbd_path = "/usr/sbin/mariadbd";
  std::string share_dir = "/usr/share/mysql";  // the bootstrap SQL (Debian mariadb-server)
  // The OS account mariadbd and its bootstrap run as (mariadb/os_account.h). With drop: data_dir,
  // tmp and the secure_file_priv dir are the account's (0700); run_dir is root's, group the
  // account's, 01770 (sticky: mariadbd makes its socket and pid file there but cannot replace
  // the option file), my.cnf root:account 0640. Without: everything keyward's own, 0700/0600.
  MariadbOsAccount run_as;
  // false only for benchmarks' plaintext baseline: no plugin, no encryption options.
  bool encrypted = true;
  // Extra `name=value` lines for the [mariadbd] group (tuning, tests), written before keyward's
  // encryption lines; from a "[sst]" line on, lines go to that group at the end.
  std::vector<std::string> extra_options;
};

// Derived paths.
std::string MariadbOptionFilePath(const MariadbInstanceSpec& spec);  // run_dir/my.cnf
std::string MariadbSocketPath(const MariadbInstanceSpec& spec);      // run_dir/mariadbd.sock
std::string MariadbPidFilePath(const MariadbInstanceSpec& spec);     // run_dir/mariadbd.pid
std::string MariadbTmpDir(const MariadbInstanceSpec& spec);
std::string MariadbSecureFileDir(const MariadbInstanceSpec& spec);  // run_dir/files (0700, empty)

// The option file's text (no secrets in it).
std::string RenderOptionFile(const MariadbInstanceSpec& spec);
// InvalidArgument for an extra option with a line break, a group other than a trailing [sst], or
// a name keyward sets itself (encryption, engines, logs, paths, accounts).
absl::Status ValidateExtraOptions(const MariadbInstanceSpec& spec);
// Validates extra_options, then writes the file 0600 to MariadbOptionFilePath, creating run_dir,
// the tmp dir and the secure_file_priv dir (0700).
absl::Status WriteOptionFile(const MariadbInstanceSpec& spec);
// mariadbd's argv: the binary, --defaults-file first (mariadbd requires it first), and
// --user=root when it runs as root (keyward as root without run_as.drop: mariadbd refuses root
// otherwise).
std::vector<std::string> MariadbdArgv(const MariadbInstanceSpec& spec);

// The OS user keyward runs as (effective uid's name; "" when it has none): the account
// mariadbd's unix_socket auth sees for keyward's own socket connections (root@localhost is
// created for it; Galera's SST connects as it).
std::string MariadbOsUserName();

// The mysql_native_password hash "*<40 hex>" of `password` (what the grant tables store).
std::string MariadbNativePasswordHash(std::string_view password);
// Checks an admin account name: 1..32 of [A-Za-z0-9_], not "root".
absl::Status ValidateMariadbAdminUser(const std::string& user);

// Creates and initialises a fresh data directory: writes the option file, then runs
// mariadbd --bootstrap with the plugin loaded (keys from `keys`, which must be started; the
// bootstrap child's pid is allowed on it for the run), so the system tablespace, redo log and
// every table are encrypted from their first byte. Accounts: root@localhost only through the
// Unix socket as the OS user keyward runs as (unix_socket auth; no password, no TCP; with
// run_as.drop also `<run_as.name>`@localhost the same way, for mariadb-backup run as it), no
// anonymous users, and `admin_user`@'%' with `admin_password` (stored as its native hash): all
// table privileges on every database but `mysql` (SELECT only), PROCESS and BINLOG MONITOR, and no
// SUPER, FILE, RELOAD, SHUTDOWN or grant/user administration (each is a way to turn encryption
// off or read keyward's files). Refuses a non-empty data_dir;
// on failure removes what it created.
absl::Status InitializeDataDir(const MariadbInstanceSpec& spec, const std::string& admin_user,
                               const SecretBytes& admin_password, MariadbKeyService& keys);

}  // namespace keyward
