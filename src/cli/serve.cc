#include "cli/serve.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/rest_server.h"
#include "cli/flags.h"
#include "control/cluster_manager.h"
#include "control/metadata_store.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "kms/escrow/escrow_provider.h"
#include "server/resp_server.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

constexpr char kServeHelp[] = R"(usage: keyward serve [flags]

Runs the control plane (REST API) and every cluster's Redis endpoint.

  --data-dir DIR            where metadata, keys and cluster data live (default ./data)
  --listen HOST:PORT        REST API address (default 127.0.0.1:7070; port 0 picks a free one)
  --cluster-host HOST       address cluster endpoints bind to (default 127.0.0.1)
  --escrow-key-file FILE    the service master key for non-CMEK data
                            (default DIR/escrow.key, created 0600 on first start)
  --data-key-rotation-days N  new data key for new files every N days (default 7)
  --max-bulk-bytes N        largest Redis argument accepted (default 67108864)
  --max-clients N           Redis connections across all clusters (default 10000)
)";

absl::Status SplitHostPort(const std::string& s, std::string* host, int* port) {
  auto colon = s.rfind(':');
  int p = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(s.substr(colon + 1), &p) || p < 0 ||
      p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--listen wants HOST:PORT, got '", s, "'"));
  }
  *host = s.substr(0, colon);
  *port = p;
  return absl::OkStatus();
}

// The owner token is created once, 0600; only its hash stays in memory.
absl::StatusOr<std::string> LoadOrCreateOwnerToken(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    ASSIGN_OR_RETURN(std::string token, RandomHex(24));
    token = "kw_" + token;
    RETURN_IF_ERROR(WriteFileAtomically(path, token + "\n", 0600));
  }
  ASSIGN_OR_RETURN(std::string token, ReadFileToString(path, 4096));
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) return absl::DataLossError(absl::StrCat(path, " is empty; delete it to make a new one"));
  std::string hash = Sha256(token);
  WipeString(token);
  return hash;
}

std::atomic<bool> g_stop{false};

absl::Status Serve(const ParsedFlags& flags) {
  std::string data_dir = flags.Get("data-dir").value_or("./data");
  std::string host;
  int port = 0;
  RETURN_IF_ERROR(SplitHostPort(flags.Get("listen").value_or("127.0.0.1:7070"), &host, &port));
  int rotation_days = 7;
  if (auto v = flags.Get("data-key-rotation-days");
      v && (!absl::SimpleAtoi(*v, &rotation_days) || rotation_days < 1)) {
    return absl::InvalidArgumentError("--data-key-rotation-days must be a whole number >= 1");
  }
  RespServerOptions resp_opts;
  if (auto v = flags.Get("max-bulk-bytes");
      v && (!absl::SimpleAtoi(*v, &resp_opts.limits.max_bulk_bytes) ||
            resp_opts.limits.max_bulk_bytes < 1024)) {
    return absl::InvalidArgumentError("--max-bulk-bytes must be a number >= 1024");
  }
  if (auto v = flags.Get("max-clients");
      v && (!absl::SimpleAtoi(*v, &resp_opts.max_clients) || resp_opts.max_clients < 1)) {
    return absl::InvalidArgumentError("--max-clients must be a number >= 1");
  }

  RETURN_IF_ERROR(MakeDirs(data_dir, 0700));
  data_dir = std::filesystem::canonical(data_dir).string();
  std::string escrow_path = flags.Get("escrow-key-file").value_or(data_dir + "/escrow.key");
  ASSIGN_OR_RETURN(std::unique_ptr<EscrowProvider> escrow, EscrowProvider::LoadOrCreate(escrow_path));
  ASSIGN_OR_RETURN(std::unique_ptr<MetadataStore> metadata,
                   OpenSqliteMetadataStore(data_dir + "/metadata.db"));
  chmod((data_dir + "/metadata.db").c_str(), 0600);
  std::string token_path = data_dir + "/owner.token";
  ASSIGN_OR_RETURN(std::string token_hash, LoadOrCreateOwnerToken(token_path));

  ASSIGN_OR_RETURN(std::unique_ptr<RespServer> resp, RespServer::New(resp_opts));
  auto shared = SharedStorageResources::New(64 << 20, 64 << 20);
  ClusterManagerOptions cm_opts;
  cm_opts.data_dir = data_dir;
  cm_opts.cluster_host = flags.Get("cluster-host").value_or("127.0.0.1");
  cm_opts.data_key_rotation_seconds = static_cast<uint64_t>(rotation_days) * 24 * 3600;
  ClusterManager clusters(cm_opts, *metadata, *escrow, *resp, shared);
  RETURN_IF_ERROR(clusters.Start());

  RestServerOptions rest_opts;
  rest_opts.host = host;
  rest_opts.port = port;
  rest_opts.owner_token_sha256 = token_hash;
  ASSIGN_OR_RETURN(std::unique_ptr<RestServer> rest, RestServer::New(rest_opts, clusters));
  rest->Start();

  printf("keyward: data directory %s (escrow key %s)\n", data_dir.c_str(), escrow->key_id().c_str());
  printf("keyward: API listening on http://%s:%d\n", host.c_str(), rest->port());
  printf("keyward: owner token in %s (the CLI reads it from there)\n", token_path.c_str());
  printf("keyward: try: build/keyward cluster create --name demo\n");
#ifdef KEYWARD_BENCH_PLAINTEXT
  printf("keyward: WARNING: benchmark build, cluster data is NOT encrypted\n");
#endif
  printf("keyward: ready\n");
  fflush(stdout);

  auto last_rotation_check = std::chrono::steady_clock::now();
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (std::chrono::steady_clock::now() - last_rotation_check > std::chrono::hours(1)) {
      clusters.RotateDataKeys();
      last_rotation_check = std::chrono::steady_clock::now();
    }
  }
  printf("keyward: shutting down\n");
  fflush(stdout);
  rest->Stop();
  clusters.Shutdown();
  resp->Stop();
  printf("keyward: stopped cleanly\n");
  return absl::OkStatus();
}

}  // namespace

int RunServe(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args,
                          {"data-dir", "listen", "cluster-host", "escrow-key-file",
                           "data-key-rotation-days", "max-bulk-bytes", "max-clients"},
                          {"help"});
  if (!flags.ok()) {
    fprintf(stderr, "keyward serve: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->Has("help")) {
    fputs(kServeHelp, stdout);
    return 0;
  }
  if (!flags->positional.empty()) {
    fprintf(stderr, "keyward serve: unexpected argument '%s'\n", flags->positional[0].c_str());
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = true; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  absl::Status st = Serve(*flags);
  if (!st.ok()) {
    fprintf(stderr, "keyward serve: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace keyward
