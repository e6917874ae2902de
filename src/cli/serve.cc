#include "cli/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <tuple>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/openapi_document.h"
#include "api/rest_server.h"
#include "backup/azure_blob_destination.h"
#include "backup/backup_destination.h"
#include "cli/flags.h"
#include "cli/serve_backup.h"
#include "cli/serve_flags.h"
#include "cli/serve_kms.h"
#include "cli/serve_tls.h"
#include "control/backup_records.h"
#include "control/cluster_runtime.h"
#include "control/control_plane.h"
#include "control/key_health_monitor.h"
#include "control/metadata_store.h"
#include "control/scheduler.h"
#include "control/wal_syncer.h"
#include "crypto/process_hardening.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "crypto/tls_certificates.h"
#include "crypto/wipe_on_free.h"
#include "kms/escrow/escrow_provider.h"
#include "kms/kms_factory.h"
#include "mariadb/os_account.h"
#include "server/resp_server.h"
#include "util/data_dir_lock.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"
#include "util/version.h"

namespace keyward {
namespace {

// At first start the organization, its owner and the owner token (0600) are created. Only the
// token's hash is kept in the metadata.
absl::Status EnsureOwnerToken(ControlPlane& control, const std::string& path) {
  auto token = control.Bootstrap();
  if (token.ok()) {
    absl::Status st = WriteFileAtomically(path, *token + "\n", 0600);
    WipeString(*token);
    return st;
  }
  if (!absl::IsAlreadyExists(token.status())) return token.status();
  if (access(path.c_str(), F_OK) != 0) {
    LogWarn("server.owner_token_missing",
            absl::StrCat(path, " is missing; use a token you kept, or add a member token"));
  }
  return absl::OkStatus();
}

std::atomic<bool> g_stop{false};

absl::Status Serve(const ParsedFlags& flags, const KmsFactoryMaker& make_kms) {
  if (auto v = flags.Get("log-level")) {
    std::optional<LogLevel> level = ParseLogLevel(*v);
    if (!level) {
      return absl::InvalidArgumentError(
          absl::StrCat("--log-level must be debug, info, warn or error, not '", *v, "'"));
    }
    SetLogLevel(*level);
  }
  // First: private files and no core dumps with keys in them (crypto/process_hardening.h).
  RETURN_IF_ERROR(HardenProcess(flags.Has("allow-core-dumps")));
  if (flags.Has("allow-core-dumps")) {
    LogWarn("server.core_dumps_allowed",
            "WARNING: --allow-core-dumps: a crash dump or debugger can read every cluster's keys "
            "and data; use it only to debug");
  }
  // Before any cluster opens: freed heap blocks (RocksDB memtables, cached blocks, buffers) are
  // wiped, so a paused cluster's plaintext does not linger in memory (crypto/wipe_on_free.h).
  EnableWipeOnFree();
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
  RETURN_IF_ERROR(ParseClientLimits(flags, &resp_opts));

  KeyMonitorOptions monitor_opts;
  for (auto [flag, target, min] :
       {std::tuple{"key-check-interval", &monitor_opts.interval_ms, int64_t{1}},
        std::tuple{"key-loss-grace", &monitor_opts.grace_ms, int64_t{0}}}) {
    int64_t seconds = 0;
    if (auto v = flags.Get(flag)) {
      if (!absl::SimpleAtoi(*v, &seconds) || seconds < min || seconds > 7 * 24 * 3600) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", flag, " must be a whole number of seconds between ", min, " and 604800"));
      }
      *target = seconds * 1000;
    }
  }
  int64_t storage_check_ms = 10'000;
  if (auto v = flags.Get("storage-check-interval")) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(*v, &seconds) || seconds < 1 || seconds > 3600) {
      return absl::InvalidArgumentError(
          "--storage-check-interval must be a whole number of seconds between 1 and 3600");
    }
    storage_check_ms = seconds * 1000;
  }
  if (auto v = flags.Get("key-auto-restore")) {
    if (*v != "true" && *v != "false") {
      return absl::InvalidArgumentError("--key-auto-restore must be true or false");
    }
    monitor_opts.auto_restore = *v == "true";
  }

  RETURN_IF_ERROR(MakeDirs(data_dir, 0700));
  data_dir = std::filesystem::canonical(data_dir).string();
  // Before anything that writes: a second server on this data dir stops here
  // (util/data_dir_lock.h).
  ASSIGN_OR_RETURN(std::unique_ptr<DataDirLock> data_dir_lock, DataDirLock::Acquire(data_dir));
  ASSIGN_OR_RETURN(ListenerSecurity security, ChooseListenerSecurity(flags, data_dir, host));
  ASSIGN_OR_RETURN(int tightened, TightenDataDirModes(data_dir));
  if (tightened > 0) {
    printf("keyward: made %d files and directories in %s private (go-rwx)\n", tightened,
           data_dir.c_str());
  }
  std::string escrow_path = flags.Get("escrow-key-file").value_or(data_dir + "/escrow.key");
  ASSIGN_OR_RETURN(std::unique_ptr<EscrowProvider> escrow_owned,
                   EscrowProvider::LoadOrCreate(escrow_path));
  std::shared_ptr<MasterKeyProvider> escrow(std::move(escrow_owned));
  std::string escrow_id = escrow->key_id();
  // Created 0600 before SQLite opens it, so its -wal and -shm files inherit that mode.
  {
    std::string db_path = data_dir + "/metadata.db";
    int fd = open(db_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
      return absl::UnavailableError(
          absl::StrCat("cannot create ", db_path, ": ", ErrnoText(errno)));
    close(fd);
    chmod(db_path.c_str(), 0600);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<MetadataStore> metadata,
                   OpenSqliteMetadataStore(data_dir + "/metadata.db"));
  // The KMS providers' settings and keyward's identity in each cloud (serve_kms.h).
  ASSIGN_OR_RETURN(ServeKms serve_kms, LoadServeKms(flags, data_dir));
  const ServiceIdentity& identity = serve_kms.identity;
  std::unique_ptr<KmsFactory> kms = make_kms(escrow, serve_kms.settings);

  resp_opts.tls_cert_file = security.cluster_cert;
  resp_opts.tls_key_file = security.cluster_key;
  ASSIGN_OR_RETURN(std::unique_ptr<RespServer> resp, RespServer::New(resp_opts));
  auto shared = SharedStorageResources::New(64 << 20, 64 << 20);
  ClusterRuntimeOptions rt_opts;
  rt_opts.data_dir = data_dir;
  rt_opts.cluster_host = flags.Get("cluster-host").value_or("127.0.0.1");
  rt_opts.advertise_host = security.advertise_host;
  rt_opts.allow_port_change = flags.Has("allow-port-change");
  // mariadb clusters' SQL ports use the cluster endpoints' certificate too.
  rt_opts.mariadb_tls_cert = security.cluster_cert;
  rt_opts.mariadb_tls_key = security.cluster_key;
  // mariadbd (another account) must never read the API's private key: by default (the API's
  // certificate) each mariadb cluster gets its own, from its own CA.
  rt_opts.mariadb_tls_own_ca =
      !security.cluster_key.empty() && security.cluster_key == security.api_key;
  rt_opts.data_key_rotation_seconds = static_cast<uint64_t>(rotation_days) * 24 * 3600;
  if (auto v = flags.Get("durability")) {
    std::optional<Durability> d = ParseDurability(*v);
    if (!d) {
      return absl::InvalidArgumentError(
          absl::StrCat("--durability must be always, everysec or none, not '", *v, "'"));
    }
    rt_opts.default_durability = *d;
  }
  RETURN_IF_ERROR(MakeDirs(data_dir + "/clusters", 0700));
  // mariadbd never runs as root. A missing account stops mariadb clusters only, naming the fix.
  if (absl::StatusOr<MariadbOsAccount> account =
          ResolveMariadbAccount(flags.Get("mariadb-user").value_or(""));
      account.ok()) {
    rt_opts.mariadb_run_as = *account;
  } else if (absl::IsInvalidArgument(account.status())) {
    return account.status();
  } else {
    rt_opts.mariadb_account_error = std::string(account.status().message());
    LogWarn("serve.mariadb_user_missing",
            absl::StrCat("mariadb clusters cannot start: ", account.status().message()));
  }
  ClusterRuntime runtime(rt_opts, *resp, shared);
  ControlPlane control(*metadata, *kms, runtime, identity);
  // Backups: their records in a database of their own (the metadata connection holds
  // metadata.db in exclusive locking mode), their objects in Azure Blob Storage when
  // --backup-azure-account is given, else in --backup-dir. Each backup is restored from and
  // deleted in the destination its record names, so both stay usable.
  ASSIGN_OR_RETURN(std::unique_ptr<BackupRecords> backup_records,
                   BackupRecords::Open(data_dir + "/backups.db"));
  ASSIGN_OR_RETURN(
      std::unique_ptr<LocalDirectoryDestination> backup_dir,
      LocalDirectoryDestination::New(flags.Get("backup-dir").value_or(data_dir + "/backups")));
  ASSIGN_OR_RETURN(std::unique_ptr<AzureBlobDestination> backup_azure,
                   LoadBackupAzure(flags, serve_kms.settings));
  if (backup_azure) {
    control.SetBackups(backup_records.get(), backup_azure.get());
    control.AddBackupDestination(backup_dir.get());
    printf("keyward: new backups go to %s\n", backup_azure->Describe().c_str());
  } else {
    control.SetBackups(backup_records.get(), backup_dir.get());
  }
  // Dual-region copies: a second directory or a second Blob container (not both).
  std::unique_ptr<BackupDestination> backup_secondary;
  ASSIGN_OR_RETURN(backup_secondary,
                   LoadBackupAzure(flags, serve_kms.settings, "backup-secondary-azure",
                                   "AZURE_SECONDARY_STORAGE_KEY"));
  if (auto dir = flags.Get("backup-secondary-dir")) {
    if (backup_secondary) {
      return absl::InvalidArgumentError(
          "--backup-secondary-dir and --backup-secondary-azure-account both name the dual-region "
          "copies' destination: give one");
    }
    ASSIGN_OR_RETURN(backup_secondary, LocalDirectoryDestination::New(*dir));
  }
  if (backup_secondary) {
    for (const BackupDestination* primary :
         {static_cast<const BackupDestination*>(backup_dir.get()),
          static_cast<const BackupDestination*>(backup_azure.get())}) {
      if (primary && backup_secondary->Describe() == primary->Describe()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the dual-region copies' destination ", backup_secondary->Describe(),
                         " is where backups already go: name another directory or container"));
      }
    }
    control.SetBackupSecondary(backup_secondary.get());
  }
  runtime.SetEncryptionInfo(
      [&control](const std::string& id) { return control.EncryptionInfoSection(id); });
  std::string token_path = data_dir + "/owner.token";
  RETURN_IF_ERROR(EnsureOwnerToken(control, token_path));
  control.SetOwnerTokenPath(token_path);  // POST /tokens/owner:rotate rewrites it
  RETURN_IF_ERROR(control.Start());

  // Background work: key health checks (and the re-wraps and restores they lead to) and
  // data-key rotation. Re-encryptions can run for hours: they get workers of their own, so a
  // few of them never hold up a key check (which would leave a revoked key unnoticed).
  Scheduler scheduler;
  Scheduler long_jobs(nullptr, /*workers=*/2);
  control.SetBackgroundRunner(
      [&long_jobs](std::function<void()> job) { long_jobs.Submit("reencrypt", std::move(job)); });
  long_jobs.Start();
  // Closing the clusters cancels running re-encryptions, so this never waits long.
  absl::Cleanup stop_long_jobs = [&runtime, &long_jobs] {
    runtime.Shutdown();
    long_jobs.Stop();
  };
  KeyHealthMonitor monitor(*metadata, *kms, control, scheduler, monitor_opts);
  // Ticks at a quarter of the interval (at most 1 s) so a due check waits little for its tick.
  scheduler.Every("key-health", std::clamp<int64_t>(monitor_opts.interval_ms / 4, 100, 1000), 0,
                  [&monitor] { monitor.Tick(); });
  scheduler.Every("data-key-rotation", 3600 * 1000, 0.1, [&runtime] { runtime.RotateDataKeys(); });
  scheduler.Every("storage-check", storage_check_ms, 0, [&control] { control.CheckStorage(); });
  // Backup policies: scheduled backups (on long_jobs, like any backup) and retention expiry.
  scheduler.Every("backup-schedule", 60 * 1000, 0, [&control] { control.RunBackupSchedule(); });
  scheduler.Start();
  // Stopped before the monitor and control plane it calls into go away, on every path out.
  absl::Cleanup stop_scheduler = [&scheduler] { scheduler.Stop(); };
  // Durability everysec: its own thread, so a key check hanging on a KMS never delays a sync.
  WalSyncer wal_syncer([&runtime] { return runtime.StoresWith(Durability::kEverySec); });
  wal_syncer.Start();
  absl::Cleanup stop_wal_syncer = [&wal_syncer] { wal_syncer.Stop(); };

  RestServerOptions rest_opts;
  rest_opts.host = host;
  rest_opts.port = port;
  rest_opts.openapi_json = OpenApiDocument();
  rest_opts.tls_cert_file = security.api_cert;
  rest_opts.tls_key_file = security.api_key;
  ASSIGN_OR_RETURN(std::unique_ptr<RestServer> rest,
                   RestServer::New(rest_opts, control, *metadata));
  rest->Start();

  printf("keyward: data directory %s (escrow key %s)\n", data_dir.c_str(), escrow_id.c_str());
  std::string scheme = security.api_cert.empty() ? "http" : "https";
  printf("keyward: API listening on %s://%s:%d\n", scheme.c_str(), host.c_str(), rest->port());
  if (resp->tls()) {
    printf("keyward: cluster endpoints speak TLS (redis-cli --tls --cacert %s)\n",
           security.api_ca.empty() ? "CA_FILE" : security.api_ca.c_str());
  }
  if (!security.api_ca.empty()) {
    printf(
        "keyward: TLS certificate from the private CA %s (give it to clients: keyward "
        "--cacert, curl --cacert)\n",
        security.api_ca.c_str());
  }
  printf("keyward: default durability %s\n",
         std::string(DurabilityName(rt_opts.default_durability)).c_str());
  printf("keyward: owner token in %s (the CLI reads it from there)\n", token_path.c_str());
  // The hint works as printed: the real address, the data dir the token is read from.
  std::string api_url = absl::StrCat(scheme, "://", host, ":", rest->port());
  printf("keyward: try: keyward%s%s%s cluster create --name demo\n",
         api_url == "http://127.0.0.1:7070" ? "" : absl::StrCat(" --server ", api_url).c_str(),
         security.api_ca.empty() ? "" : absl::StrCat(" --cacert ", security.api_ca).c_str(),
         data_dir == "./data" || data_dir == "data"
             ? ""
             : absl::StrCat(" --data-dir ", data_dir).c_str());
#ifdef KEYWARD_BENCH_PLAINTEXT
  printf("keyward: WARNING: benchmark build, cluster data is NOT encrypted\n");
#endif
  printf("keyward: ready\n");
  fflush(stdout);
  LogInfo("server.ready", "keyward is ready",
          {{"api", api_url}, {"data_dir", data_dir}, {"version", kKeywardVersion}});

  // A signal handler may only set a flag; this thread waits for it and nothing else.
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  printf("keyward: shutting down\n");
  fflush(stdout);
  LogInfo("server.stopping", "signal received: closing every cluster");
  rest->Stop();
  scheduler.Stop();
  wal_syncer.Stop();
  std::move(stop_long_jobs).Invoke();  // closes every cluster, then the re-encryption workers
  resp->Stop();
  printf("keyward: stopped cleanly\n");
  return absl::OkStatus();
}

}  // namespace

int RunServe(const std::vector<std::string>& raw_args, const KmsFactoryMaker& make_kms) {
  auto args = WithConfigFile(raw_args);
  if (!args.ok()) {
    fprintf(stderr, "keyward serve: %s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  auto flags = ParseServeFlags(*args);
  if (!flags.ok()) {
    fprintf(stderr, "keyward serve: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->Has("help")) {
    fputs(ServeHelp().c_str(), stdout);
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
  absl::Status st = Serve(*flags, make_kms);
  if (!st.ok()) {
    fprintf(stderr, "keyward serve: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace keyward
