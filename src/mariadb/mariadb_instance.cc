#include "mariadb/mariadb_instance.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "mariadb/key_service.h"
#include "util/file_util.h"

namespace keyward {
namespace {

// The bootstrap SQL mariadb-install-db feeds mariadbd, in its order (Debian mariadb-server).
constexpr const char* kBootstrapFiles[] = {
    "mysql_system_tables.sql", "mysql_performance_tables.sql",   "mysql_system_tables_data.sql",
    "fill_help_tables.sql",    "maria_add_gis_sp_bootstrap.sql", "mysql_sys_schema.sql"};
constexpr size_t kMaxBootstrapFile = 64 << 20;
// The admin's global privileges: PROCESS (information_schema's InnoDB encryption and process
// views) and BINLOG MONITOR (SHOW BINARY LOGS), both read-only. Deliberately none of SUPER (it
// lets a session drop enforce_storage_engine and SET GLOBAL encryption, log and path variables),
// FILE (INTO OUTFILE / LOAD_FILE), RELOAD, SHUTDOWN, CREATE USER, or any global table privilege
// (those would cover the mysql schema: UPDATE mysql.global_priv + FLUSH PRIVILEGES = FILE).
constexpr char kAdminGlobalAccess[] = "1048832";  // (1 << 8) | (1 << 20)
// global_priv rows without "version_id" are read as pre-10.5 ones and MariaDB then widens some
// privileges into the ones 10.5 split out; 10.11's id keeps them exactly as stored.
constexpr char kAdminPrivVersionId[] = "101100";
// Table privileges come from mysql.db rows instead: every database (`%`, which also lets the
// admin CREATE DATABASE) gets all but GRANT, and an exact row for `mysql` (exact names sort
// before patterns and the first matching row wins) gives SELECT only there.
constexpr char kDbPrivColumns[] =
    "Host,Db,User,Select_priv,Insert_priv,Update_priv,Delete_priv,Create_priv,Drop_priv,"
    "References_priv,Index_priv,Alter_priv,Create_tmp_table_priv,Lock_tables_priv,"
    "Create_view_priv,Show_view_priv,Create_routine_priv,Alter_routine_priv,Execute_priv,"
    "Event_priv,Trigger_priv,Delete_history_priv";
constexpr char kDbPrivAll[] =
    "'Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y','Y'";
constexpr char kDbPrivSelect[] =
    "'Y','N','N','N','N','N','N','N','N','N','N','N','N','N','N','N','N','N','N'";

bool DirIsEmptyOrMissing(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return true;
  return std::filesystem::is_empty(dir, ec);
}

// The OS user mariadbd's unix_socket auth sees for keyward's own connections: the effective
// uid's name from the password database, never $USER (which the environment can set to anything).
std::string CurrentUserName() {
  if (geteuid() == 0) return "root";
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return "";
  }
  return found->pw_name;
}

// Option names (normalised: lower case, '-' as '_', a loose_/skip_/enable_/disable_/maximum_
// prefix removed) extra_options may not set, by substring: the encryption, engine, logging, path
// and account options keyward's own lines decide. MariaDB also takes unique prefixes of names,
// so the checks are on substrings and the extra lines are written before keyward's anyway.
constexpr const char* kProtectedOptionParts[] = {
    "encrypt",        "plugin",       "keyward",    "storage_engine", "secure_file",
    "general_log",    "slow_query",   "log_output", "datadir",        "socket",
    "tmpdir",         "local_infile", "init_file",  "init_connect",   "log_error",
    "pid_file",       "log_bin",      "grant",      "home_dir",       "undo_directory",
    "data_file_path", "bind_address", "sql_mode",   "defaults",       "aria_log",
    "symbolic_links"};
constexpr const char* kProtectedOptionNames[] = {"user", "port", "chroot", "basedir"};
// Full names whose abbreviations hold none of the parts above ("innodb_data_f").
constexpr const char* kProtectedLongNames[] = {
    "innodb_data_file_path",  "innodb_data_home_dir",  "innodb_log_group_home_dir",
    "innodb_undo_directory",  "innodb_tmpdir",         "log_bin_index",
    "default_storage_engine", "enforce_storage_engine"};

bool SafeSqlName(const std::string& s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

bool WriteAll(int fd, const char* data, size_t size) {
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::string MariadbOsUserName() { return CurrentUserName(); }

std::string MariadbOptionFilePath(const MariadbInstanceSpec& spec) {
  return spec.run_dir + "/my.cnf";
}
std::string MariadbSocketPath(const MariadbInstanceSpec& spec) {
  return spec.run_dir + "/mariadbd.sock";
}
std::string MariadbPidFilePath(const MariadbInstanceSpec& spec) {
  return spec.run_dir + "/mariadbd.pid";
}
std::string MariadbTmpDir(const MariadbInstanceSpec& spec) {
  return spec.tmp_dir.empty() ? spec.run_dir + "/tmp" : spec.tmp_dir;
}
std::string MariadbSecureFileDir(const MariadbInstanceSpec& spec) {
  return spec.run_dir + "/files";
}

std::string RenderOptionFile(const MariadbInstanceSpec& spec) {
  std::vector<std::string> lines = {
      "# Written by keyward; rewritten at every start. Do not edit.",
      "[mariadbd]",
      absl::StrCat("datadir=", spec.data_dir),
      absl::StrCat("socket=", MariadbSocketPath(spec)),
      absl::StrCat("pid-file=", MariadbPidFilePath(spec)),
      absl::StrCat("tmpdir=", MariadbTmpDir(spec)),
      absl::StrCat("bind-address=", spec.host),
      absl::StrCat("port=", spec.port),
      "skip-name-resolve",
      "character-set-server=utf8mb4",
      "collation-server=utf8mb4_general_ci",
      // No log_error: mariadbd then writes its error log to stderr, which keyward's log takes.
      "general_log=0",
      "slow_query_log=0",
      "local_infile=0",
      // The binlog (encrypted below) is on so that point-in-time tooling and replicas work.
      "log_bin=mariadb-bin",
      "server_id=1",
      // User tables may not live in Aria (its aria_log.* is never encrypted, MDEV-8587):
      // ENGINE=Aria or MyISAM becomes InnoDB with a warning, which needs engine substitution
      // allowed (the default sql_mode minus NO_ENGINE_SUBSTITUTION).
      "default_storage_engine=InnoDB",
      "enforce_storage_engine=InnoDB",
      "sql_mode=STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER",
      // INTO OUTFILE, LOAD DATA and LOAD_FILE only inside an empty private directory, whoever
      // holds FILE (nobody over TCP: the admin account has no FILE).
      absl::StrCat("secure_file_priv=", MariadbSecureFileDir(spec)),
  };
  // Extra [mariadbd] lines come before keyward's encryption and TLS lines: for an option given
  // twice the later line wins, so none of them can turn encryption off (ValidateExtraOptions
  // also refuses those names).
  auto group_tail = std::find_if(spec.extra_options.begin(), spec.extra_options.end(),
                                 [](const std::string& l) { return !l.empty() && l[0] == '['; });
  lines.insert(lines.end(), spec.extra_options.begin(), group_tail);
  if (spec.encrypted) {
    const std::vector<std::string> encryption = {
        absl::StrCat("plugin_dir=", spec.plugin_dir),
        "plugin_load_add=keyward_key_management.so",
        // FORCE: without its keys mariadbd refuses to start rather than run unencrypted.
        "keyward_key_management=FORCE",
        absl::StrCat("keyward_key_management_socket=", spec.key_socket),
        "innodb_encrypt_tables=FORCE",
        "innodb_encrypt_log=ON",
        "innodb_encrypt_temporary_tables=ON",
        "encrypt_tmp_disk_tables=ON",
        "encrypt_tmp_files=ON",
        "encrypt_binlog=ON",
        "aria_encrypt_tables=ON",
        // Background threads re-encrypt pages whose key version is older than the latest by
        // this many versions: 1 = every keyward data-key rotation re-encrypts everything.
        "innodb_encryption_threads=2",
        "innodb_encryption_rotate_key_age=1",
        "innodb_encryption_rotation_iops=2000",
    };
    lines.insert(lines.end(), encryption.begin(), encryption.end());
  }
  if (!spec.tls_cert.empty()) {
    lines.push_back(absl::StrCat("ssl_cert=", spec.tls_cert));
    lines.push_back(absl::StrCat("ssl_key=", spec.tls_key));
    if (!spec.tls_ca.empty()) lines.push_back(absl::StrCat("ssl_ca=", spec.tls_ca));
    // Like the kv endpoints with TLS: no plaintext TCP client (the cluster password and every
    // row would cross the network in the clear). Unix-socket connections (keyward's own,
    // Galera's SST, mariadb-backup) count as secure.
    lines.push_back("require_secure_transport=ON");
  }
  // Extra lines after a group line ("[sst]" of Galera) stay in their group, at the end.
  lines.insert(lines.end(), group_tail, spec.extra_options.end());
  return absl::StrCat(absl::StrJoin(lines, "\n"), "\n");
}

absl::Status ValidateExtraOptions(const MariadbInstanceSpec& spec) {
  bool in_mariadbd = true;
  for (const std::string& line : spec.extra_options) {
    if (line.find_first_of("\r\n") != std::string::npos || line.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          "a MariaDB extra option holds a line break: give one option per entry");
    }
    if (!line.empty() && line[0] == '[') {
      // Only [sst] (Galera's SST script) may follow; [mariadbd] again would reopen the group.
      if (line != "[sst]") {
        return absl::InvalidArgumentError(absl::StrCat("MariaDB extra option group '", line,
                                                       "' is not allowed: only [sst] may follow"));
      }
      in_mariadbd = false;
      continue;
    }
    if (!in_mariadbd) continue;
    std::string name = line.substr(0, line.find('='));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    size_t start = name.find_first_not_of(" \t");
    name = start == std::string::npos ? "" : name.substr(start);
    for (char& c : name)
      c = c == '-' ? '_' : static_cast<char>(tolower(static_cast<unsigned char>(c)));
    for (const char* prefix : {"loose_", "skip_", "enable_", "disable_", "maximum_"}) {
      if (absl::StartsWith(name, prefix)) name = name.substr(strlen(prefix));
    }
    if (name.empty() || name[0] == '!' || name[0] == '#' || name[0] == ';') {
      return absl::InvalidArgumentError(
          absl::StrCat("MariaDB extra option '", line, "' is not an option line: use name=value"));
    }
    bool refused = false;
    for (const char* part : kProtectedOptionParts) {
      if (name.find(part) != std::string::npos) refused = true;
    }
    for (const char* exact : kProtectedOptionNames) {
      if (name == exact) refused = true;
    }
    // MariaDB accepts any unambiguous prefix of an option's name.
    for (const char* part : kProtectedOptionParts) {
      if (absl::StartsWith(part, name)) refused = true;
    }
    for (const char* full : kProtectedLongNames) {
      if (absl::StartsWith(full, name)) refused = true;
    }
    if (refused) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MariaDB extra option '", name,
          "' is keyward's to set (encryption, storage engine, logs, paths, accounts): remove it"));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteOptionFile(const MariadbInstanceSpec& spec) {
  if (absl::Status s = ValidateExtraOptions(spec); !s.ok()) return s;
  if (absl::Status s = MakeDirs(spec.run_dir, 0700); !s.ok()) return s;
  const MariadbOsAccount& account = spec.run_as;
  if (account.drop) {
    // Sticky and root's: the account creates its socket and pid file, removes only its own.
    if (chown(spec.run_dir.c_str(), geteuid(), account.gid) != 0 ||
        chmod(spec.run_dir.c_str(), 01770) != 0) {
      return absl::PermissionDeniedError(absl::StrCat("cannot give ", spec.run_dir, " to group of ",
                                                      account.name, ": ", ErrnoText(errno)));
    }
    // A socket or pid file an earlier mariadbd left as another owner would stop this one
    // (mariadbd is not running now: it is stopped or a leftover was stopped first).
    for (const std::string& stale : {MariadbSocketPath(spec), MariadbPidFilePath(spec)}) {
      struct stat st {};
      if (lstat(stale.c_str(), &st) == 0 && st.st_uid != account.uid) unlink(stale.c_str());
    }
  }
  // Recursive: data written by a keyward that ran mariadbd as root becomes the account's.
  if (absl::Status s = GiveDirToAccount(MariadbTmpDir(spec), account, true); !s.ok()) return s;
  if (absl::Status s = GiveDirToAccount(MariadbSecureFileDir(spec), account, true); !s.ok()) {
    return s;
  }
  const std::string path = MariadbOptionFilePath(spec);
  if (absl::Status s =
          WriteFileAtomically(path, RenderOptionFile(spec), account.drop ? 0640 : 0600);
      !s.ok()) {
    return s;
  }
  // chmod too: keyward's umask (077) took the group's read bit off at creation.
  if (account.drop &&
      (chown(path.c_str(), geteuid(), account.gid) != 0 || chmod(path.c_str(), 0640) != 0)) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot let ", account.name, " read ", path, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

std::vector<std::string> MariadbdArgv(const MariadbInstanceSpec& spec) {
  std::vector<std::string> argv = {spec.mariadbd_path,
                                   absl::StrCat("--defaults-file=", MariadbOptionFilePath(spec))};
  if (geteuid() == 0 && !spec.run_as.drop) argv.push_back("--user=root");
  return argv;
}

std::string MariadbNativePasswordHash(std::string_view password) {
  unsigned char first[EVP_MAX_MD_SIZE];
  unsigned char second[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(password.data(), password.size(), first, &len, EVP_sha1(), nullptr);
  EVP_Digest(first, len, second, &len, EVP_sha1(), nullptr);
  OPENSSL_cleanse(first, sizeof(first));
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "*";
  for (unsigned int i = 0; i < len; i++) {
    out.push_back(kHex[second[i] >> 4]);
    out.push_back(kHex[second[i] & 15]);
  }
  return out;
}

absl::Status ValidateMariadbAdminUser(const std::string& user) {
  bool ok = !user.empty() && user.size() <= 32 && user != "root";
  for (char c : user) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) ok = false;
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin user '", user, "' is not allowed: use 1 to 32 letters, digits or '_', not 'root'"));
  }
  return absl::OkStatus();
}

absl::Status InitializeDataDir(const MariadbInstanceSpec& spec, const std::string& admin_user,
                               const SecretBytes& admin_password, MariadbKeyService& keys) {
  if (absl::Status s = ValidateMariadbAdminUser(admin_user); !s.ok()) return s;
  if (spec.data_dir.empty() || spec.run_dir.empty()) {
    return absl::InvalidArgumentError("MariaDB data and run directories must be set");
  }
  if (!DirIsEmptyOrMissing(spec.data_dir)) {
    return absl::FailedPreconditionError(absl::StrCat("MariaDB data directory '", spec.data_dir,
                                                      "' is not empty; it is already initialised"));
  }
  // With its own OS account, that account's socket login is the one mariadb-backup (run as it)
  // uses; root@localhost (OS root through the socket) stays too.
  const std::string os_user = spec.run_as.drop ? spec.run_as.name : CurrentUserName();
  if (!SafeSqlName(os_user)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot name the OS user for MariaDB's root account: uid has no usable name "
                     "in the password database (getpwuid)"));
  }
  // Built before anything is created, so a missing SQL file leaves nothing behind.
  std::string sql = absl::StrCat("create database if not exists mysql;\nuse mysql;\n",
                                 "SET @auth_root_socket='", os_user, "';\n");
  for (const char* name : kBootstrapFiles) {
    std::string path = absl::StrCat(spec.share_dir, "/", name);
    absl::StatusOr<std::string> text = ReadFileToString(path, kMaxBootstrapFile);
    if (!text.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("MariaDB bootstrap SQL '", path, "' is unreadable (",
                       text.status().message(), "); install mariadb-server (scripts/bootstrap)"));
    }
    absl::StrAppend(&sql, *text, "\n");
  }
  absl::StrAppend(&sql, "use mysql;\nDELETE FROM global_priv WHERE User='';\n",
                  "DELETE FROM proxies_priv WHERE User='' OR Host <> 'localhost';\n",
                  "INSERT INTO global_priv VALUES ('%','", admin_user,
                  "','{\"access\":", kAdminGlobalAccess, ",\"version_id\":", kAdminPrivVersionId,
                  ",\"plugin\":\"mysql_native_password\",\"authentication_string\":\"",
                  MariadbNativePasswordHash(admin_password.view()),
                  "\",\"password_last_changed\":", time(nullptr), "}');\n", "INSERT INTO db (",
                  kDbPrivColumns, ") VALUES ('%','%','", admin_user, "',", kDbPrivAll,
                  "),\n  ('%','mysql','", admin_user, "',", kDbPrivSelect, ");\n");

  if (absl::Status s = GiveDirToAccount(spec.data_dir, spec.run_as, false); !s.ok()) return s;
  auto cleanup = [&] {
    std::error_code ec;
    std::filesystem::remove_all(spec.data_dir, ec);
  };
  if (absl::Status s = WriteOptionFile(spec); !s.ok()) {
    cleanup();
    return s;
  }
  std::vector<std::string> args = MariadbdArgv(spec);
  // As mariadb-install-db runs it: the system tables are Aria, so the InnoDB-only rule is off
  // for the bootstrap only.
  for (const char* a : {"--bootstrap", "--log-warnings=0", "--enforce-storage-engine=",
                        "--max_allowed_packet=8M", "--net_buffer_length=16K"}) {
    args.emplace_back(a);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int sql_fds[2];
  int go_fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sql_fds) != 0) {
    cleanup();
    return absl::InternalError(absl::StrCat("socketpair: ", ErrnoText(errno)));
  }
  if (pipe2(go_fds, O_CLOEXEC) != 0) {
    close(sql_fds[0]);
    close(sql_fds[1]);
    cleanup();
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno)));
  }
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const MariadbOsAccount run_as = spec.run_as;
  pid_t pid = fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only. Waits until the parent has allowed its pid on the
    // key socket, so the plugin's first request cannot race the permission. Dies with keyward
    // (even a SIGKILLed one): a half-initialised data dir is removed at the next create anyway.
    // The calling thread waits for it below, so the signal cannot fire early.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    char go;
    close(go_fds[1]);
    if (read(go_fds[0], &go, 1) != 1) _exit(127);
    dup2(sql_fds[1], STDIN_FILENO);
    if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
    // mariadbd inherits nothing of keyward's but stdio: not its sockets, files or key socket.
    close_range(3, ~0U, 0);
    if (DropToAccountInChild(run_as) != 0) _exit(126);
    // A change of ids clears the parent-death signal (kernel commit_creds): set it again.
    if (run_as.drop) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  int fork_errno = errno;
  close(sql_fds[1]);
  close(go_fds[0]);
  if (devnull >= 0) close(devnull);
  if (pid < 0) {
    close(sql_fds[0]);
    close(go_fds[1]);
    cleanup();
    return absl::InternalError(absl::StrCat("fork: ", ErrnoText(fork_errno)));
  }
  keys.SetBootstrapPid(pid);
  char go = 1;
  bool released = write(go_fds[1], &go, 1) == 1;
  close(go_fds[1]);
  bool sent = released && WriteAll(sql_fds[0], sql.data(), sql.size());
  WipeString(sql);  // it held the admin password's hash
  shutdown(sql_fds[0], SHUT_WR);
  close(sql_fds[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  keys.SetBootstrapPid(0);
  if (!sent || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    cleanup();
    std::string how = WIFEXITED(wstatus) ? absl::StrCat("exit status ", WEXITSTATUS(wstatus))
                                         : absl::StrCat("signal ", WTERMSIG(wstatus));
    return absl::InternalError(absl::StrCat(
        "initialising MariaDB data directory '", spec.data_dir, "' failed: ", spec.mariadbd_path,
        " --bootstrap ended with ", how,
        WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 126 && run_as.drop
            ? absl::StrCat(" (it could not switch to user ", run_as.name, ")")
            : std::string(),
        "; its messages are in keyward's log above (keys served on '", spec.key_socket, "')"));
  }
  return absl::OkStatus();
}

}  // namespace keyward
