// keyward-mariadb-keyd: one encrypted mariadbd under keyward's keys, without the control plane,
// for tests/integration/mariadb_encryption.test.mjs and bench/sql. Test-only; never installed.
//
//   keyward-mariadb-keyd --dir DIR --port N --plugin-dir D [--plaintext]
//
// Opens (or creates) DIR/keys.dict under an escrow key (DIR/escrow.key), serves it with
// MariadbKeyService on DIR/keys/mariadb-keys.sock to the mariadbd it starts, initialises
// DIR/data on first use (admin account "admin", password from env KW_ADMIN_PASSWORD) and runs
// mariadbd. --plaintext: no plugin, no encryption (the benchmark's baseline). Commands on stdin,
// one per line, each answered with one line on stdout:
//   rotate       add a data key       → "rotated <id> version <MariaDB key version>"
//   stop-mysql   stop mariadbd (SIGTERM, wait), keep serving keys → "stopped <wait status>"
//   start-mysql  start mariadbd again → "started <pid>"
//   stop-keys    stop the key service (keyward gone) → "keys-stopped"
//   quit         stop everything and exit
// Prints "ready <mariadbd pid>" once mariadbd is spawned (the client polls its port).

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "kms/escrow/escrow_provider.h"
#include "mariadb/key_service.h"
#include "mariadb/mariadb_instance.h"
#include "mariadb_spawn.h"
#include "storage/key_dictionary.h"
#include "util/file_util.h"

namespace {

using namespace keyward;

std::atomic<pid_t> g_mariadbd{0};
volatile sig_atomic_t g_stop = 0;

void OnStopSignal(int) { g_stop = 1; }

pid_t Spawn(const MariadbInstanceSpec& spec) {
  return SpawnHeldMariadbd(MariadbdArgv(spec), [](pid_t pid) { g_mariadbd.store(pid); });
}

int StopMariadbd() {
  pid_t pid = g_mariadbd.load();
  if (pid <= 0) return -1;
  kill(pid, SIGTERM);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_mariadbd.store(0);
  return status;
}

int Fail(const absl::Status& s) {
  fprintf(stderr, "keyward-mariadb-keyd: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, plugin_dir;
  int port = 0;
  bool plaintext = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--port" && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (a == "--plugin-dir" && i + 1 < argc) {
      plugin_dir = argv[++i];
    } else if (a == "--plaintext") {
      plaintext = true;
    } else {
      fprintf(stderr,
              "usage: keyward-mariadb-keyd --dir DIR --port N --plugin-dir D [--plaintext]\n");
      return 2;
    }
  }
  if (dir.empty() || port <= 0 || plugin_dir.empty())
    return Fail(absl::InvalidArgumentError("--dir, --port and --plugin-dir are required"));
  signal(SIGPIPE, SIG_IGN);
  // SIGTERM/SIGINT stop mariadbd cleanly too (bench/sql ends runs that way).
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return Fail(s);

  auto escrow = EscrowProvider::LoadOrCreate(dir + "/escrow.key");
  if (!escrow.ok()) return Fail(escrow.status());
  const std::string dict_path = dir + "/" + KeyDictionary::kFileName;
  const std::string cluster_id = "c-mariadb-test";
  auto dict = access(dict_path.c_str(), F_OK) == 0
                  ? KeyDictionary::Open(dict_path, cluster_id, **escrow)
                  : KeyDictionary::Create(dict_path, cluster_id, **escrow,
                                          static_cast<uint64_t>(time(nullptr)));
  if (!dict.ok()) return Fail(dict.status());

  MariadbInstanceSpec spec;
  spec.data_dir = dir + "/data";
  spec.run_dir = dir + "/run";
  spec.port = static_cast<uint16_t>(port);
  spec.plugin_dir = plugin_dir;
  spec.key_socket = dir + "/keys/mariadb-keys.sock";
  spec.encrypted = !plaintext;
  if (const char* extra = getenv("KW_MARIADB_EXTRA_OPTIONS"); extra != nullptr) {
    std::string all = extra;
    for (size_t at = 0; at < all.size();) {
      size_t end = all.find(';', at);
      if (end == std::string::npos) end = all.size();
      if (end > at) spec.extra_options.push_back(all.substr(at, end - at));
      at = end + 1;
    }
  }

  MariadbKeyService keys(**dict, [](pid_t pid) { return pid == g_mariadbd.load(); });
  if (absl::Status s = keys.Start(spec.key_socket); !s.ok()) return Fail(s);
  if (access((spec.data_dir + "/mysql").c_str(), F_OK) != 0) {
    const char* pw = getenv("KW_ADMIN_PASSWORD");
    SecretBytes password = SecretBytes::FromView(pw != nullptr ? pw : "");
    if (absl::Status s = InitializeDataDir(spec, "admin", password, keys); !s.ok()) return Fail(s);
  } else if (absl::Status s = WriteOptionFile(spec); !s.ok()) {
    return Fail(s);
  }
  pid_t pid = Spawn(spec);
  if (pid < 0) return Fail(absl::InternalError("fork failed"));
  printf("ready %d\n", pid);

  std::string line;
  while (g_stop == 0) {
    pollfd in{STDIN_FILENO, POLLIN, 0};
    int n = poll(&in, 1, 200);
    pid_t child = g_mariadbd.load();
    int status = 0;
    if (child > 0 && waitpid(child, &status, WNOHANG) == child) {
      g_mariadbd.store(0);
      printf("exited %d\n", status);
    }
    if (n <= 0) continue;
    if (!std::getline(std::cin, line) || line == "quit") break;
    if (line == "rotate") {
      auto id = (*dict)->AddDataKey(static_cast<uint64_t>(time(nullptr)));
      if (id.ok()) {
        printf("rotated %u version %u\n", *id, MariadbKeyVersionOfDataKey(*id));
      } else {
        printf("error %s\n", std::string(id.status().message()).c_str());
      }
    } else if (line == "stop-mysql") {
      printf("stopped %d\n", StopMariadbd());
    } else if (line == "start-mysql") {
      printf("started %d\n", Spawn(spec));
    } else if (line == "stop-keys") {
      keys.Stop();
      printf("keys-stopped\n");
    } else {
      printf("error unknown command '%s'\n", line.c_str());
    }
  }
  StopMariadbd();
  keys.Stop();
  return 0;
}
