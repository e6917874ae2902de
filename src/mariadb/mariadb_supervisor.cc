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

#include "absl/strings/str_cat.h"
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

MariadbInstanceSpec SpecFor(const MariadbSupervisorOptions& o) {
  const std::string base = o.cluster_dir + "/mariadb";
  MariadbInstanceSpec spec;
  spec.data_dir = base + "/data";
  spec.run_dir = base + "/run";
  spec.tmp_dir = base + "/tmp";
  spec.host = o.host;
  spec.port = static_cast<uint16_t>(o.port);
  spec.plugin_dir = o.plugin_dir;
  spec.key_socket = spec.run_dir + "/keys.sock";
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
  return SpecFor(options);
}

MariadbInstanceSpec MariadbSupervisor::instance_spec() const { return SpecFor(options_); }

void MariadbSupervisor::StopLeftover(const std::string& cluster_id, const std::string& cluster_dir,
                                     milliseconds grace) {
  MariadbSupervisorOptions o;
  o.cluster_dir = cluster_dir;
  const std::string defaults_arg =
      absl::StrCat("--defaults-file=", MariadbOptionFilePath(SpecFor(o)));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ProcCmdline(entry.path().string() + "/cmdline");
    if (cmdline.find(defaults_arg + '\0') == std::string::npos) continue;
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

pid_t MariadbSupervisor::pid() const { return mariadbd_ ? mariadbd_->pid() : 0; }
int MariadbSupervisor::restarts() const { return mariadbd_ ? mariadbd_->restarts() : 0; }
bool MariadbSupervisor::gave_up() const { return mariadbd_ && mariadbd_->gave_up(); }

absl::StatusOr<std::unique_ptr<MariadbSupervisor>> MariadbSupervisor::Start(
    MariadbSupervisorOptions options, MasterKeyProvider& provider, bool create,
    const std::string& admin_password) {
  if (options.port <= 0) return absl::InvalidArgumentError("a mariadb cluster needs a port");
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

absl::Status MariadbSupervisor::Run(bool create, const std::string& admin_password) {
  MariadbInstanceSpec spec = SpecFor(options_);

  StopLeftover(options_.cluster_id, options_.cluster_dir, options_.stop_grace);
  keys_ = std::make_unique<MariadbKeyService>(
      *dictionary_, [this](pid_t peer) { return peer > 0 && peer == allowed_pid_.load(); });
  if (absl::Status st = keys_->Start(spec.key_socket); !st.ok()) return st;
  if (create) {
    SecretBytes password = SecretBytes::FromView(admin_password);
    if (absl::Status st = InitializeDataDir(spec, "admin", password, *keys_); !st.ok()) return st;
  } else {
    if (access(spec.data_dir.c_str(), F_OK) != 0) {
      return absl::DataLossError(absl::StrCat("the MariaDB data directory ", spec.data_dir,
                                              " is missing; restore the cluster from a backup"));
    }
    // Rendered at every start: a newer keyward's options apply to existing clusters too.
    if (absl::Status st = WriteOptionFile(spec); !st.ok()) return st;
  }

  SupervisedProcessOptions po;
  po.name = "mariadbd";
  po.cluster_id = options_.cluster_id;
  po.argv = MariadbdArgv(spec);
  po.stop_grace = options_.stop_grace;
  // A mariadbd that served for a few seconds and then died (a crash, an OOM kill) is restarted
  // at once; one that keeps dying right after starting backs off up to 30 s, then stays down.
  po.first_backoff = std::chrono::milliseconds(200);
  po.max_backoff = std::chrono::milliseconds(30000);
  po.stable_after = std::chrono::milliseconds(5000);
  po.max_restarts = options_.max_restarts;
  po.on_pid = [this](pid_t pid) { allowed_pid_.store(pid); };
  po.ready = [host = options_.host, port = options_.port, timeout = options_.ready_timeout](
                 pid_t, const std::function<bool()>& running) {
    return WaitForMysqlGreeting(host, port, timeout, running);
  };
  mariadbd_ = std::make_unique<SupervisedProcess>(std::move(po));
  if (absl::Status st = mariadbd_->Start(); !st.ok()) return st;
  LogInfo("mariadb.serving",
          absl::StrCat("cluster ", options_.cluster_id, ": mariadbd serves on ", options_.host, ":",
                       options_.port, " (pid ", mariadbd_->pid(), ")"),
          {{"cluster_id", options_.cluster_id}, {"port", options_.port}});
  return absl::OkStatus();
}

void MariadbSupervisor::Stop() {
  // mariadbd first: its clean shutdown flushes through the plugin, which still needs the keys.
  if (mariadbd_) mariadbd_->Stop();
  allowed_pid_.store(0);
  if (keys_) keys_->Stop();
}

}  // namespace keyward
