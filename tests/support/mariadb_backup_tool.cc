// keyward-mariadb-backup-tool: one encrypted mariadbd under keyward's keys (as
// keyward-mariadb-keyd), plus backups of it into a local backup destination and restores into new
// instances, for tests/integration/mariadb_backup.test.mjs. Test-only; never installed.
//
//   keyward-mariadb-backup-tool --dir DIR --port N --plugin-dir D
//
// Opens (or creates) DIR/keys.dict under an escrow key (DIR/escrow.key), serves it on
// DIR/keys/mariadb-keys.sock to the mariadbd it starts, initialises DIR/data on first use (admin
// account "admin", password from env KW_ADMIN_PASSWORD) and runs mariadbd. Commands on stdin,
// one per line, each answered with one line on stdout:
//   backup DEST ID                 BackUpMariadb into local:DEST → "backed-up <bytes> <objects>"
//   restore DEST ID NEWDIR PORT [nokeys]
//                                  RestoreMariadbBackup into NEWDIR/data with keys from the same
//                                  dictionary (a second key service on NEWDIR/keys; none with
//                                  nokeys), then starts mariadbd on PORT → "restored <pid>"
//   quit                           stop every mariadbd and exit
// Failures answer "error <message>". Prints "ready <mariadbd pid>" once mariadbd is spawned.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backup/backup_destination.h"
#include "kms/escrow/escrow_provider.h"
#include "mariadb/key_service.h"
#include "mariadb/mariadb_backup.h"
#include "mariadb/mariadb_instance.h"
#include "mariadb_spawn.h"
#include "storage/key_dictionary.h"
#include "util/file_util.h"

namespace {

using namespace keyward;

std::mutex g_mu;
std::set<pid_t> g_mariadbds;  // every mariadbd this tool started (each may ask for keys)

bool Allowed(pid_t pid) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_mariadbds.count(pid) > 0;
}

pid_t Spawn(const MariadbInstanceSpec& spec) {
  return SpawnHeldMariadbd(MariadbdArgv(spec), [](pid_t pid) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_mariadbds.insert(pid);
  });
}

void StopAll() {
  std::set<pid_t> pids;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    pids = g_mariadbds;
  }
  for (pid_t pid : pids) kill(pid, SIGTERM);
  for (pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

MariadbInstanceSpec SpecFor(const std::string& dir, int port, const std::string& plugin_dir) {
  MariadbInstanceSpec spec;
  spec.data_dir = dir + "/data";
  spec.run_dir = dir + "/run";
  spec.port = static_cast<uint16_t>(port);
  spec.plugin_dir = plugin_dir;
  spec.key_socket = dir + "/keys/mariadb-keys.sock";
  return spec;
}

int Fail(const absl::Status& s) {
  fprintf(stderr, "keyward-mariadb-backup-tool: %s\n", std::string(s.message()).c_str());
  return 1;
}

std::string OneLine(const absl::Status& s) {
  std::string m(s.message());
  for (char& c : m) {
    if (c == '\n') c = ' ';
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, plugin_dir;
  int port = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--port" && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (a == "--plugin-dir" && i + 1 < argc) {
      plugin_dir = argv[++i];
    } else {
      fprintf(stderr, "usage: keyward-mariadb-backup-tool --dir DIR --port N --plugin-dir D\n");
      return 2;
    }
  }
  if (dir.empty() || port <= 0 || plugin_dir.empty()) {
    return Fail(absl::InvalidArgumentError("--dir, --port and --plugin-dir are required"));
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return Fail(s);

  auto escrow = EscrowProvider::LoadOrCreate(dir + "/escrow.key");
  if (!escrow.ok()) return Fail(escrow.status());
  const std::string dict_path = dir + "/" + KeyDictionary::kFileName;
  const std::string cluster_id = "c-mariadb-backup-test";
  auto dict = access(dict_path.c_str(), F_OK) == 0
                  ? KeyDictionary::Open(dict_path, cluster_id, **escrow)
                  : KeyDictionary::Create(dict_path, cluster_id, **escrow,
                                          static_cast<uint64_t>(time(nullptr)));
  if (!dict.ok()) return Fail(dict.status());

  MariadbInstanceSpec spec = SpecFor(dir, port, plugin_dir);
  MariadbKeyService keys(**dict, Allowed);
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

  // Key services of restored instances (same dictionary, their own sockets).
  std::vector<std::unique_ptr<MariadbKeyService>> restored_keys;
  std::string line;
  while (std::getline(std::cin, line) && line != "quit") {
    std::istringstream in(line);
    std::string cmd, dest_dir, id;
    in >> cmd >> dest_dir >> id;
    if (cmd == "backup" && !id.empty()) {
      auto dest = LocalDirectoryDestination::New(dest_dir);
      if (!dest.ok()) {
        printf("error %s\n", OneLine(dest.status()).c_str());
        continue;
      }
      MariadbBackupJob job;
      job.backup_id = id;
      job.cluster_id = cluster_id;
      job.project_id = "p-test";
      job.key_record_id = "k-test";
      job.created_at = time(nullptr);
      job.instance = spec;
      auto summary = BackUpMariadb(job, keys, **escrow, **dest, nullptr);
      if (summary.ok()) {
        printf("backed-up %llu %llu\n", static_cast<unsigned long long>(summary->bytes),
               static_cast<unsigned long long>(summary->objects_written));
      } else {
        printf("error %s\n", OneLine(summary.status()).c_str());
      }
    } else if (cmd == "restore" && !id.empty()) {
      std::string new_dir, mode;
      int new_port = 0;
      in >> new_dir >> new_port >> mode;
      auto dest = LocalDirectoryDestination::New(dest_dir);
      if (!dest.ok() || new_dir.empty() || new_port <= 0) {
        printf("error restore DEST ID NEWDIR PORT: bad arguments\n");
        continue;
      }
      MariadbRestoreJob job;
      job.backup_id = id;
      job.target = SpecFor(new_dir, new_port, plugin_dir);
      auto service = std::make_unique<MariadbKeyService>(**dict, Allowed);
      // "nokeys": nothing answers on the key socket (keyward gone) — the prepare must fail.
      if (absl::Status s =
              mode == "nokeys" ? absl::OkStatus() : service->Start(job.target.key_socket);
          !s.ok()) {
        printf("error %s\n", OneLine(s).c_str());
        continue;
      }
      auto manifest = RestoreMariadbBackup(job, *service, **escrow, **dest, nullptr);
      if (!manifest.ok()) {
        printf("error %s\n", OneLine(manifest.status()).c_str());
        continue;
      }
      printf("restored %d\n", Spawn(job.target));
      restored_keys.push_back(std::move(service));
    } else {
      printf("error unknown command '%s'\n", line.c_str());
    }
  }
  StopAll();
  for (auto& s : restored_keys) s->Stop();
  keys.Stop();
  return 0;
}
