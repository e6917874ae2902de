#include "mariadb/mariadb_supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "mariadb/galera_options.h"
#include "mariadb/key_service.h"
#include "mariadb/mariadb_instance.h"
#include "mariadb/supervised_process.h"
#include "storage/storage_error.h"
#include "util/file_util.h"
#include "util/log.h"

namespace keyward {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string ExeDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

std::string EnvOr(const char* name, const std::string& value, const std::string& fallback) {
  if (!value.empty()) return value;
  if (const char* v = getenv(name); v && *v) return v;
  return fallback;
}

// One attempt: connects, reads the first packet, checks it is a MySQL protocol-10 greeting
// (4-byte header, then protocol version 10). Error packets (0xff: "too many connections",
// "host blocked") count as serving too: mariadbd answered.
bool GreetingOnce(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return false;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    pollfd p{fd, POLLIN, 0};
    unsigned char buf[5];
    size_t got = 0;
    while (got < sizeof(buf) && poll(&p, 1, 2000) == 1) {
      ssize_t n = read(fd, buf + got, sizeof(buf) - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ok = got == sizeof(buf) && (buf[4] == 10 || buf[4] == 0xff);
  }
  close(fd);
  return ok;
}

// /proc/PID/cmdline (its stat size is 0, so it is read until EOF); "" when gone.
std::string ProcCmdline(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || out.size() > 64 * 1024) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

MariadbInstanceSpec SpecFor(const MariadbSupervisorOptions& o, size_t node) {
  const std::string base =
      node == 0 ? o.cluster_dir + "/mariadb" : absl::StrCat(o.cluster_dir, "/mariadb/n", node);
  MariadbInstanceSpec spec;
  spec.data_dir = base + "/data";
  spec.run_dir = base + "/run";
  spec.tmp_dir = base + "/tmp";
  spec.host = o.host;
  spec.port = static_cast<uint16_t>(
      node == 0 || node >= o.galera_nodes.size() ? o.port : o.galera_nodes[node].sql_port);
  spec.plugin_dir = o.plugin_dir;
  // One key service for every node, in its own directory (the only one the account may search
  // without also writing to it): Galera's SST hands the joiner a backup-my.cnf naming the
  // donor's socket.
  spec.key_socket = o.cluster_dir + "/mariadb/keys/keys.sock";
  spec.run_as = o.run_as;
  spec.tls_cert = o.tls_cert_path;
  spec.tls_key = o.tls_key_path;
  spec.tls_ca = o.tls_ca_path;
  spec.mariadbd_path = o.mariadbd_path;
  return spec;
}

// mariadbd and the plugin dir as Start resolves them (options, then environment, then defaults).
void ResolvePaths(MariadbSupervisorOptions& options) {
  options.mariadbd_path = EnvOr("KEYWARD_MARIADBD", options.mariadbd_path, "/usr/sbin/mariadbd");
  options.plugin_dir = EnvOr("KEYWARD_MARIADB_PLUGIN_DIR", options.plugin_dir, ExeDir());
}

}  // namespace

MariadbInstanceSpec MariadbClusterInstanceSpec(MariadbSupervisorOptions options) {
  ResolvePaths(options);
  return SpecFor(options, 0);
}

// Node 0's (a backup is taken from it; Galera keeps every node equal).
MariadbInstanceSpec MariadbSupervisor::instance_spec() const { return SpecFor(options_, 0); }

void MariadbSupervisor::StopLeftover(const std::string& cluster_id, const std::string& cluster_dir,
                                     milliseconds grace) {
  // Any node's: --defaults-file=<cluster_dir>/mariadb/[n<i>/]run/my.cnf.
  const std::string defaults_prefix = absl::StrCat("--defaults-file=", cluster_dir, "/mariadb/");
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ProcCmdline(entry.path().string() + "/cmdline");
    size_t at = cmdline.find(defaults_prefix);
    if (at == std::string::npos) continue;
    size_t end = cmdline.find('\0', at);
    std::string arg = cmdline.substr(at, end == std::string::npos ? end : end - at);
    if (!absl::EndsWith(arg, "/run/my.cnf")) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    LogWarn("mariadbd.leftover",
            absl::StrCat("cluster ", cluster_id, ": a mariadbd (pid ", pid,
                         ") from an earlier keyward still runs for it; stopping it first"),
            {{"cluster_id", cluster_id}, {"pid", pid}});
    kill(pid, SIGTERM);
    auto deadline = steady_clock::now() + grace;
    while (kill(pid, 0) == 0 && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(100));
    }
    if (kill(pid, 0) == 0) kill(pid, SIGKILL);
    // Not our child: it is reaped by init; wait until it is gone for good.
    for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i)
      std::this_thread::sleep_for(milliseconds(50));
  }
}

absl::Status WaitForMysqlGreeting(const std::string& host, int port, milliseconds timeout,
                                  const std::function<bool()>& running) {
  auto deadline = steady_clock::now() + timeout;
  while (steady_clock::now() < deadline) {
    if (running && !running()) return absl::UnavailableError("it exited before serving");
    if (GreetingOnce(host, port)) return absl::OkStatus();
    std::this_thread::sleep_for(milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("it did not accept connections on ", host, ":", port, " within ",
                   std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), " s"));
}

MariadbSupervisor::MariadbSupervisor(MariadbSupervisorOptions options,
                                     std::shared_ptr<KeyDictionary> dictionary)
    : options_(std::move(options)), dictionary_(std::move(dictionary)) {}

MariadbSupervisor::~MariadbSupervisor() { Stop(); }

pid_t MariadbSupervisor::pid() const { return node_pid(0); }

pid_t MariadbSupervisor::node_pid(size_t node) const {
  return node < mariadbd_.size() && mariadbd_[node] ? mariadbd_[node]->pid() : 0;
}

int MariadbSupervisor::restarts() const {
  int n = 0;
  for (const auto& p : mariadbd_) n += p ? p->restarts() : 0;
  return n;
}

bool MariadbSupervisor::gave_up() const {
  if (mariadbd_.empty()) return false;
  for (const auto& p : mariadbd_) {
    if (!p || !p->gave_up()) return false;
  }
  return true;
}

std::vector<int> MariadbSupervisor::node_ports() const {
  std::vector<int> out;
  for (const MariadbInstanceSpec& spec : specs_) out.push_back(spec.port);
  if (out.empty()) out.push_back(options_.port);
  return out;
}

std::string MariadbSupervisor::GaleraPortsPath(const std::string& cluster_dir) {
  return cluster_dir + "/mariadb/galera.ports";
}

bool MariadbSupervisor::AllowedPeer(pid_t peer) const {
  if (peer <= 0) return false;
  for (int i = 0; i < options_.nodes && i < kGaleraNodes; ++i) {
    pid_t node = node_pids_[i].load();
    if (node <= 0) continue;
    if (peer == node) return true;
    // A Galera node's SST script runs mariadb-backup, which asks for keys too.
    if (options_.nodes > 1 && IsProcessDescendant(peer, node)) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<MariadbSupervisor>> MariadbSupervisor::Start(
    MariadbSupervisorOptions options, MasterKeyProvider& provider, bool create,
    const std::string& admin_password) {
  if (options.port <= 0) return absl::InvalidArgumentError("a mariadb cluster needs a port");
  if (options.nodes != 1 && options.nodes != kGaleraNodes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a mariadb cluster has 1 or ", kGaleraNodes, " nodes, not ", options.nodes));
  }
  ResolvePaths(options);
  std::string plugin = options.plugin_dir + "/keyward_key_management.so";
  if (access(options.mariadbd_path.c_str(), X_OK) != 0) {
    return MarkStorageError(absl::FailedPreconditionError(
        absl::StrCat("cannot run ", options.mariadbd_path, " (", ErrnoText(errno),
                     "): mariadb clusters need MariaDB 10.11 (apt-get install mariadb-server)")));
  }
  if (access(plugin.c_str(), R_OK) != 0) {
    return MarkStorageError(absl::FailedPreconditionError(absl::StrCat(
        "the key plugin ", plugin, " is missing (", ErrnoText(errno),
        "): it is built with keyward when libmariadbd-dev is installed, and installed beside the "
        "keyward binary (or set KEYWARD_MARIADB_PLUGIN_DIR)")));
  }
  std::string dict_path = options.cluster_dir + "/" + KeyDictionary::kFileName;
  absl::StatusOr<std::unique_ptr<KeyDictionary>> dict;
  if (create) {
    absl::Status made = MakeDirs(options.cluster_dir, 0700);
    if (!made.ok()) return MarkStorageError(made);
    if (access(dict_path.c_str(), F_OK) == 0) {
      return absl::AlreadyExistsError(absl::StrCat("cluster directory ", options.cluster_dir,
                                                   " already holds a key dictionary"));
    }
    dict = KeyDictionary::Create(dict_path, options.cluster_id, provider,
                                 static_cast<uint64_t>(time(nullptr)));
  } else {
    dict = KeyDictionary::Open(dict_path, options.cluster_id, provider);
    // Everything but the unwrap is about the file itself: missing, unreadable, damaged.
    if (!dict.ok() && !dict.status().GetPayload(KeyDictionary::kUnwrapFailedPayload)) {
      return MarkStorageError(dict.status());
    }
  }
  if (!dict.ok()) return dict.status();
  std::unique_ptr<MariadbSupervisor> s(
      new MariadbSupervisor(std::move(options), std::shared_ptr<KeyDictionary>(std::move(*dict))));
  absl::Status st = s->Run(create, admin_password);
  if (!st.ok()) {
    s->Stop();  // nothing left running, the keys wiped
    return MarkStorageError(st);
  }
  return s;
}

absl::Status MariadbSupervisor::PrepareAccount() {
  const MariadbOsAccount& account = options_.run_as;
  // The account reaches its directories through cluster_dir/mariadb (and n<i>/ for Galera
  // nodes); keyward's files beside them (keys.dict, metadata, escrow key, galera-tls/) stay
  // root's 0600.
  const std::string top =
      options_.data_root.empty() ? DirName(DirName(options_.cluster_dir)) : options_.data_root;
  if (absl::Status st =
          CheckAccountCanRead(specs_[0].plugin_dir + "/keyward_key_management.so", account);
      !st.ok()) {
    return st;
  }
  for (MariadbInstanceSpec& spec : specs_) {
    const std::string node_dir = DirName(spec.data_dir);  // base or base/n<i>
    if (absl::Status st = MakeDirs(node_dir, 0700); !st.ok()) return st;
    if (absl::Status st = LetAccountReach(top, node_dir, account); !st.ok()) return st;
    // TLS files are keyward's (0600): mariadbd reads copies its group may read, in run/.
    if (absl::Status st = MakeDirs(spec.run_dir, 0700); !st.ok()) return st;
    for (auto [path, name] :
         {std::pair{&spec.tls_cert, "tls-cert.pem"}, std::pair{&spec.tls_key, "tls-key.pem"},
          std::pair{&spec.tls_ca, "tls-ca.pem"}}) {
      if (path->empty()) continue;
      absl::StatusOr<std::string> shared =
          ShareFileWithAccount(*path, spec.run_dir + "/" + name, account);
      if (!shared.ok()) return shared.status();
      *path = *shared;
    }
    if (access(spec.data_dir.c_str(), F_OK) == 0) {
      // Data of a keyward that ran mariadbd as root (or a restore) becomes the account's (a
      // no-op after).
      if (absl::Status st = GiveDirToAccount(spec.data_dir, account, true); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::Status MariadbSupervisor::Run(bool create, const std::string& admin_password) {
  for (int i = 0; i < options_.nodes; ++i) specs_.push_back(SpecFor(options_, i));
  const MariadbInstanceSpec& first = specs_[0];

  StopLeftover(options_.cluster_id, options_.cluster_dir, options_.stop_grace);
  const MariadbOsAccount& account = options_.run_as;
  if (account.drop) {
    if (absl::Status st = PrepareAccount(); !st.ok()) return st;
  }
  keys_ = std::make_unique<MariadbKeyService>(*dictionary_,
                                              [this](pid_t peer) { return AllowedPeer(peer); });
  if (account.drop) keys_->SetPeerAccount(account.uid, account.gid);
  if (absl::Status st = keys_->Start(first.key_socket); !st.ok()) return st;
  if (create) {
    // Initialised as a plain mariadbd (a bootstrap is no cluster member); the wsrep options
    // are added below.
    SecretBytes password = SecretBytes::FromView(admin_password);
    if (absl::Status st = InitializeDataDir(first, "admin", password, *keys_); !st.ok()) return st;
  } else if (access(first.data_dir.c_str(), F_OK) != 0) {
    return absl::DataLossError(absl::StrCat("the MariaDB data directory ", first.data_dir,
                                            " is missing; restore the cluster from a backup"));
  }
  if (options_.nodes > 1) {
    if (absl::Status st = PrepareGalera(); !st.ok()) return st;
  }
  // Rendered at every start: a newer keyward's options apply to existing clusters too.
  for (const MariadbInstanceSpec& spec : specs_) {
    if (absl::Status st = MakeDirs(spec.data_dir, 0700); !st.ok()) return st;
    // A joiner's state transfer writes into it as the account.
    if (absl::Status st = GiveDirToAccount(spec.data_dir, options_.run_as, false); !st.ok()) {
      return st;
    }
    if (absl::Status st = WriteOptionFile(spec); !st.ok()) return st;
  }
  size_t bootstrap = 0;
  if (options_.nodes > 1 && !create) {
    absl::StatusOr<size_t> chosen = GaleraBootstrapNode();
    if (!chosen.ok()) return chosen.status();
    bootstrap = *chosen;
  }
  mariadbd_.resize(specs_.size());
  // The bootstrap node first (it starts the Galera cluster), then the others join it one at a
  // time: a donor serves one state transfer at a time.
  if (absl::Status st = StartNode(bootstrap, options_.nodes > 1); !st.ok()) return st;
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (i == bootstrap) continue;
    if (absl::Status st = StartNode(i, false); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status MariadbSupervisor::StartNode(size_t node, bool new_cluster) {
  const MariadbInstanceSpec& spec = specs_[node];
  SupervisedProcessOptions po;
  po.name = "mariadbd";
  po.cluster_id = options_.cluster_id;
  po.argv = MariadbdArgv(spec);
  if (new_cluster) {
    // A restart after a crash rejoins the running cluster instead of starting a second one.
    po.restart_argv = po.argv;
    po.argv.emplace_back(kGaleraNewClusterArg);
  }
  po.run_as = options_.run_as;
  po.stop_grace = options_.stop_grace;
  // A mariadbd that served for a few seconds and then died (a crash, an OOM kill) is restarted
  // at once; one that keeps dying right after starting backs off up to 30 s, then stays down.
  po.first_backoff = std::chrono::milliseconds(200);
  po.max_backoff = std::chrono::milliseconds(30000);
  po.stable_after = std::chrono::milliseconds(5000);
  po.max_restarts = options_.max_restarts;
  po.on_pid = [this, node](pid_t pid) { node_pids_[node].store(pid); };
  po.ready = [host = options_.host, port = spec.port, timeout = options_.ready_timeout](
                 pid_t, const std::function<bool()>& running) {
    // A Galera joiner opens its port only after its state transfer.
    return WaitForMysqlGreeting(host, port, timeout, running);
  };
  mariadbd_[node] = std::make_unique<SupervisedProcess>(std::move(po));
  if (absl::Status st = mariadbd_[node]->Start(); !st.ok()) {
    if (options_.nodes == 1) return st;
    return absl::Status(st.code(), absl::StrCat("Galera node ", node, ": ", st.message()));
  }
  LogInfo(
      "mariadb.serving",
      absl::StrCat("cluster ", options_.cluster_id, ": mariadbd",
                   options_.nodes > 1 ? absl::StrCat(" (Galera node ", node, ")") : "",
                   " serves on ", options_.host, ":", spec.port, " (pid ", mariadbd_[node]->pid(),
                   ", user ", options_.run_as.drop ? options_.run_as.name : "keyward's own", ")"),
      {{"cluster_id", options_.cluster_id}, {"port", static_cast<int>(spec.port)}});
  return absl::OkStatus();
}

void MariadbSupervisor::Stop() {
  // mariadbd first: its clean shutdown flushes through the plugin, which still needs the keys.
  // Galera nodes one after the other, the last one last: it leaves the cluster with the newest
  // position and safe_to_bootstrap set, so the next start bootstraps from it.
  for (size_t i = mariadbd_.size(); i-- > 0;) {
    if (mariadbd_[i]) mariadbd_[i]->Stop();
  }
  for (auto& pid : node_pids_) pid.store(0);
  if (options_.nodes > 1) RemoveGcaches();
  if (keys_) keys_->Stop();
}

}  // namespace keyward
