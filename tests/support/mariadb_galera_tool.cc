// keyward-mariadb-galera-tool: a MariaDB Galera cluster of N encrypted mariadbd nodes on
// loopback under ONE cluster key dictionary, without the control plane, for
// tests/integration/mariadb_galera.test.mjs. Test-only; never installed.
//
//   keyward-mariadb-galera-tool --dir DIR --name NAME --plugin-dir D --ports P,P,P,P[,...]
//
// Four ports per node (sql, galera, ist, sst). Opens (or creates) DIR/keys.dict under an escrow
// key and serves it on DIR/keys/mariadb-keys.sock to every node's mariadbd and its descendants
// (SST scripts, mariadb-backup); makes the cluster-private CA and node certificate under
// DIR/tls; gcaches under /dev/shm/NAME-n<i> (refused unless memory-backed). Node 0 is
// initialised (InitializeDataDir; admin "admin", password from env KW_ADMIN_PASSWORD) and
// bootstraps the cluster (--wsrep-new-cluster); the others start empty and join by SST.
// Prints "ready" once every node is spawned. Commands on stdin, one line each answered by one:
//   kill I     SIGKILL node I and reap it → "killed I"
//   start I    start node I again (joins the running cluster) → "started I <pid>"
//   quit       SIGTERM every node (last first), wait, remove the gcaches, exit
// Node exits are reported as "exited I <status>".

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/tls_certificates.h"
#include "kms/escrow/escrow_provider.h"
#include "mariadb/galera_options.h"
#include "mariadb/key_service.h"
#include "mariadb/mariadb_instance.h"
#include "mariadb_spawn.h"
#include "storage/key_dictionary.h"
#include "util/file_util.h"

namespace {

using namespace keyward;

constexpr int kMaxNodes = 8;
std::atomic<pid_t> g_nodes[kMaxNodes];

bool AllowedPeer(pid_t pid) {
  for (auto& n : g_nodes) {
    pid_t node = n.load();
    if (node > 0 && IsProcessDescendant(pid, node)) return true;
  }
  return false;
}

pid_t Spawn(const MariadbInstanceSpec& spec, int index, bool new_cluster) {
  std::vector<std::string> args = MariadbdArgv(spec);
  if (new_cluster) args.emplace_back(kGaleraNewClusterArg);
  return SpawnHeldMariadbd(args, [index](pid_t pid) { g_nodes[index].store(pid); });
}

int Fail(const absl::Status& s) {
  fprintf(stderr, "keyward-mariadb-galera-tool: %s\n", std::string(s.message()).c_str());
  return 1;
}

void Reap(int i, int options) {
  pid_t pid = g_nodes[i].load();
  if (pid <= 0) return;
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid, &status, options)) < 0 && errno == EINTR) {
  }
  if (r == pid) {
    g_nodes[i].store(0);
    printf("exited %d %d\n", i, status);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, name, plugin_dir, ports_arg;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Fail(absl::InvalidArgumentError("usage: see the file's comment"));
    if (a == "--dir") {
      dir = argv[++i];
    } else if (a == "--name") {
      name = argv[++i];
    } else if (a == "--plugin-dir") {
      plugin_dir = argv[++i];
    } else if (a == "--ports") {
      ports_arg = argv[++i];
    } else {
      return Fail(absl::InvalidArgumentError(absl::StrCat("unknown argument ", a)));
    }
  }
  std::vector<int> ports;
  for (absl::string_view p : absl::StrSplit(ports_arg, ',', absl::SkipEmpty())) {
    ports.push_back(atoi(std::string(p).c_str()));
  }
  const int nodes = static_cast<int>(ports.size() / 4);
  if (dir.empty() || name.empty() || plugin_dir.empty() || ports.size() % 4 != 0 || nodes < 1 ||
      nodes > kMaxNodes) {
    return Fail(absl::InvalidArgumentError(
        "--dir, --name, --plugin-dir and --ports (4 per node, 1 to 8 nodes) are required"));
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return Fail(s);
  if (absl::Status s = CheckMemoryBacked("/dev/shm"); !s.ok()) return Fail(s);

  auto escrow = EscrowProvider::LoadOrCreate(dir + "/escrow.key");
  if (!escrow.ok()) return Fail(escrow.status());
  const std::string dict_path = dir + "/" + KeyDictionary::kFileName;
  auto dict =
      access(dict_path.c_str(), F_OK) == 0
          ? KeyDictionary::Open(dict_path, name, **escrow)
          : KeyDictionary::Create(dict_path, name, **escrow, static_cast<uint64_t>(time(nullptr)));
  if (!dict.ok()) return Fail(dict.status());
  auto tls = EnsureSelfSignedTls(dir + "/tls", {"127.0.0.1", "localhost"}, /*peer_auth=*/true);
  if (!tls.ok()) return Fail(tls.status());

  GaleraClusterSpec cluster;
  cluster.cluster_name = name;
  cluster.tls_ca = tls->ca_cert;
  cluster.tls_cert = tls->cert;
  cluster.tls_key = tls->key;
  cluster.sst_user = geteuid() == 0 ? "root" : (getenv("USER") ? getenv("USER") : "mysql");
  for (int i = 0; i < nodes; i++) {
    GaleraNode n;
    n.name = absl::StrCat("n", i);
    n.sql_port = static_cast<uint16_t>(ports[4 * i]);
    n.galera_port = static_cast<uint16_t>(ports[4 * i + 1]);
    n.ist_port = static_cast<uint16_t>(ports[4 * i + 2]);
    n.sst_port = static_cast<uint16_t>(ports[4 * i + 3]);
    cluster.nodes.push_back(n);
  }
  const std::string key_socket = dir + "/keys/mariadb-keys.sock";
  MariadbKeyService keys(**dict, AllowedPeer);
  if (absl::Status s = keys.Start(key_socket); !s.ok()) return Fail(s);

  std::vector<MariadbInstanceSpec> specs;
  for (int i = 0; i < nodes; i++) {
    MariadbInstanceSpec spec;
    spec.data_dir = absl::StrCat(dir, "/n", i, "/data");
    spec.run_dir = absl::StrCat(dir, "/n", i, "/run");
    spec.port = cluster.nodes[i].sql_port;
    spec.plugin_dir = plugin_dir;
    spec.key_socket = key_socket;
    if (i == 0 && access((spec.data_dir + "/mysql").c_str(), F_OK) != 0) {
      // Initialised without wsrep (a bootstrap is not a cluster member), then started as one.
      const char* pw = getenv("KW_ADMIN_PASSWORD");
      SecretBytes password = SecretBytes::FromView(pw != nullptr ? pw : "");
      if (absl::Status s = InitializeDataDir(spec, "admin", password, keys); !s.ok()) {
        return Fail(s);
      }
    }
    auto galera = RenderGaleraOptions(cluster, i);
    if (!galera.ok()) return Fail(galera.status());
    spec.extra_options.insert(spec.extra_options.end(), galera->begin(), galera->end());
    if (absl::Status s = MakeDirs(spec.data_dir, 0700); !s.ok()) return Fail(s);
    if (absl::Status s = MakeDirs(GaleraGcacheDir(cluster, i), 0700); !s.ok()) return Fail(s);
    if (absl::Status s = WriteOptionFile(spec); !s.ok()) return Fail(s);
    specs.push_back(spec);
  }
  for (int i = 0; i < nodes; i++) {
    if (Spawn(specs[i], i, /*new_cluster=*/i == 0) < 0) {
      return Fail(absl::InternalError("fork failed"));
    }
    // A joiner needs a donor: give node 0 a head start before the others ask for SST.
    if (i == 0) sleep(2);
  }
  printf("ready\n");

  std::string line;
  for (;;) {
    pollfd in{STDIN_FILENO, POLLIN, 0};
    int n = poll(&in, 1, 200);
    for (int i = 0; i < nodes; i++) Reap(i, WNOHANG);
    if (n <= 0) continue;
    if (!std::getline(std::cin, line) || line == "quit") break;
    std::istringstream words(line);
    std::string cmd;
    int i = -1;
    words >> cmd >> i;
    if (i < 0 || i >= nodes) {
      printf("error bad command '%s'\n", line.c_str());
    } else if (cmd == "kill") {
      if (pid_t pid = g_nodes[i].load(); pid > 0) kill(pid, SIGKILL);
      Reap(i, 0);
      printf("killed %d\n", i);
    } else if (cmd == "start") {
      printf("started %d %d\n", i, Spawn(specs[i], i, /*new_cluster=*/false));
    } else {
      printf("error unknown command '%s'\n", line.c_str());
    }
  }
  for (int i = nodes - 1; i >= 0; i--) {
    if (pid_t pid = g_nodes[i].load(); pid > 0) kill(pid, SIGTERM);
    Reap(i, 0);
  }
  keys.Stop();
  for (int i = 0; i < nodes; i++) {
    std::error_code ec;
    std::filesystem::remove_all(GaleraGcacheDir(cluster, i), ec);
  }
  return 0;
}
