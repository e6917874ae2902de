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
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/openapi_document.h"
#include "api/rest_server.h"
#include "backup/azure_blob_destination.h"
#include "backup/backup_destination.h"
#include "cli/flags.h"
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
#include "nlohmann/json.hpp"
#include "server/resp_server.h"
#include "util/data_dir_lock.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"
#include "util/version.h"

namespace keyward {
namespace {

constexpr char kServeHelp[] = R"(usage: keyward serve [flags]

Runs the control plane (REST API) and every cluster's Redis endpoint.

  --config FILE             a JSON object of these flags ({"data-dir":"/srv/kw", ...});
                            flags on the command line win
  --data-dir DIR            where metadata, keys and cluster data live (default ./data)
  --listen HOST:PORT        REST API address (default 127.0.0.1:7070; port 0 picks a free one)
  --cluster-host HOST       address cluster endpoints bind to (default 127.0.0.1)
  --advertise-host HOST     host name or address clients are told for cluster endpoints
                            (default: --cluster-host; this machine's name when that is 0.0.0.0)
  --allow-port-change       a cluster whose recorded port is taken at start moves to a new
                            port (default: it stays inaccessible, naming the port, and is
                            retried: whoever holds the port would collect clients' passwords)
  --tls-cert FILE           serve the API over HTTPS with this PEM certificate (chain) ...
  --tls-key FILE            ... and its PEM private key (unencrypted, 0600)
  --tls-self-signed         make (once) a private CA and a certificate for the API and the
                            cluster endpoints under DIR/tls/; clients trust DIR/tls/ca.pem
                            (keyward --cacert FILE, redis-cli --tls --cacert FILE)
  --cluster-tls-cert FILE   cluster endpoints speak TLS (1.2+) with this PEM certificate ...
  --cluster-tls-key FILE    ... and key (default: the API's --tls-cert/--tls-key or
                            --tls-self-signed certificate; neither: plaintext Redis)
  --insecure-plaintext      allow --listen or --cluster-host on an address other machines
                            reach without TLS (tokens and passwords would cross the network
                            in cleartext); without it keyward refuses to start
  --escrow-key-file FILE    the service master key for non-CMEK data
                            (default DIR/escrow.key, created 0600 on first start)
  --backup-dir DIR          where encrypted backups are written (default DIR/backups; 0700)
  --backup-azure-account A  write new backups to Azure Blob Storage account A instead (Shared
                            Key from AZURE_STORAGE_KEY, else keyward's Entra identity below,
                            which needs Storage Blob Data Contributor on the container);
                            backups already in --backup-dir stay restorable from there
  --backup-azure-container C  the container (default keyward-backups; created when missing)
  --backup-azure-endpoint U the blob endpoint (default https://A.blob.core.windows.net; a
                            private endpoint, or azurite's https://127.0.0.1:PORT/devstoreaccount1)
  --backup-azure-ca-file F  CA bundle for that endpoint (private CA, emulator); TLS is verified
  --backup-azure-block-size N  objects over N bytes go up as blocks of N (default 4194304)
  --backup-secondary-dir DIR  dual-region copies: every backup of a cluster whose backup policy
                            has dual_region (never in CMEK projects) is copied here too
  --data-key-rotation-days N  new data key for new files every N days (default 7)
  --max-bulk-bytes N        largest Redis argument accepted (default 67108864)
  --max-clients N           Redis connections across all clusters (default 10000; fitted
                            under the file descriptor limit, ulimit -n, with a warning)
  --max-clients-per-cluster N  Redis connections to one cluster (default 1000), so one
                            tenant cannot take them all
  --max-input-bytes N       largest Redis command, all its arguments together, refused from
                            its declared lengths before the bytes arrive (default 268435456)
  --max-client-memory N     input + output buffers of all Redis clients together; over it the
                            client holding the most is closed (default 1073741824)
  --auth-timeout S          seconds a Redis client has to AUTH before it is closed (default 10)
  --idle-timeout S          close authenticated Redis clients idle this many seconds
                            (default 0: never, like Redis)
  --durability D            when clusters created without a choice of their own acknowledge a
                            write: always (default; WAL synced before the reply), everysec
                            (synced at least once a second), none (the OS writes it back)
  --key-check-interval S    seconds between health checks of each key that protects a
                            running cluster (default 30, up to 10 % early; one check per key)
  --key-loss-grace S        how long transient KMS trouble (timeouts, 5xx, 429) is ridden out
                            on the keys in memory before clusters go inaccessible (default 600)
  --storage-check-interval S  seconds between storage checks (default 10): clusters whose
                            storage stopped writes go degraded, and ones that could not open
                            for lack of space or an I/O error are retried
  --key-auto-restore B      true (default): clusters cut by the monitor reopen by themselves
                            when the key is usable again; false: they wait for a resume
  --azure-app-id ID         keyward's Microsoft Entra application id, shown to customers
  --azure-app-name NAME     its display name (both default to a generated, persisted identity)
  --aws-principal-arn ARN   keyward's AWS principal for key policies (default: generated, persisted)
  --log-level L             debug, info (default), warn or error: the least severe line
                            written to stderr (one JSON object per line: time, level, event,
                            msg, ids; a line per API request)
  --allow-core-dumps        for debugging only: let the process dump core and keep key buffers
                            in dumps (by default neither; files are always created 0600)

Azure (keyward authenticates as its own Entra application; the same variables as Azure's SDKs):
  --azure-tenant-id T       or AZURE_TENANT_ID
  --azure-client-id C       or AZURE_CLIENT_ID; the secret comes from AZURE_CLIENT_SECRET
  --azure-client-certificate F  or AZURE_CLIENT_CERTIFICATE_PATH: PEM certificate + key
  --azure-managed-identity  use the managed identity endpoint (IMDS) instead of a secret
  --azure-imds-url URL      managed identity endpoint (default http://169.254.169.254/...)
                            AZURE_FEDERATED_TOKEN_FILE selects workload identity
  --azure-authority-host U  or AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com)
  --azure-management-host U ARM endpoint (default https://management.azure.com)
  --azure-vault-url-template T  default https://{name}.vault.azure.net
  --azure-managed-hsm-url-template T  default https://{name}.managedhsm.azure.net
  --azure-connect-to H:P    reach every Azure host at H:P (private endpoint, emulator)
  --azure-ca-file F         CA bundle for Azure's endpoints (private CA, emulator)
  --azure-api-version V     Key Vault REST version (default 7.4)

AWS KMS (credentials the AWS SDKs' way: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
[+ AWS_SESSION_TOKEN], else AWS_PROFILE in ~/.aws/credentials or ~/.aws/config, else
AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN via STS, else EC2 instance metadata when
AWS_EC2_METADATA_SERVICE_ENDPOINT is set):
  --aws-endpoint-url U      KMS endpoint for every region (or AWS_ENDPOINT_URL_KMS,
                            AWS_ENDPOINT_URL; default https://kms.{region}.amazonaws.com)
  --aws-use-fips-endpoint   https://kms-fips.{region}.amazonaws.com (or AWS_USE_FIPS_ENDPOINT=true)
  --aws-ca-file F           CA bundle for AWS endpoints (or AWS_CA_BUNDLE; private endpoint,
                            emulator)
)";

// --max-clients, --max-clients-per-cluster, --max-input-bytes, --max-client-memory,
// --auth-timeout, --idle-timeout (server/connection_limits.h).
absl::Status ParseClientLimits(const ParsedFlags& flags, RespServerOptions* o) {
  ConnectionLimitOptions& c = o->clients;
  for (auto [flag, target, min] :
       {std::tuple<const char*, size_t*, size_t>{"max-clients", &c.max_clients, 1},
        {"max-clients-per-cluster", &c.max_clients_per_cluster, 1},
        {"max-client-memory", &c.max_client_memory, 1 << 20}}) {
    if (auto v = flags.Get(flag); v && (!absl::SimpleAtoi(*v, target) || *target < min)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be a number >= ", min));
    }
  }
  if (auto v = flags.Get("max-input-bytes");
      v && (!absl::SimpleAtoi(*v, &o->limits.max_request_bytes) ||
            o->limits.max_request_bytes < o->limits.max_bulk_bytes + 1024)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-input-bytes must be a number >= --max-bulk-bytes + 1024 (",
                     o->limits.max_bulk_bytes + 1024, ")"));
  }
  if (!flags.Get("max-input-bytes") &&
      o->limits.max_request_bytes < o->limits.max_bulk_bytes + 1024) {
    o->limits.max_request_bytes = o->limits.max_bulk_bytes + 1024;  // room for one big argument
  }
  // One client at its input limit with a full reply queue must fit under the total.
  size_t one_client = o->limits.max_request_bytes + o->max_pending_output;
  if (!flags.Get("max-client-memory") && c.max_client_memory < one_client) {
    c.max_client_memory = one_client;
  } else if (c.max_client_memory < one_client) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-client-memory must be at least --max-input-bytes + 64 MiB of replies (",
                     one_client, "), so one client at its limits is not closed for memory"));
  }
  for (auto [flag, target, min] :
       {std::tuple<const char*, int64_t*, double>{"auth-timeout", &c.auth_timeout_ms, 0.001},
        {"idle-timeout", &c.idle_timeout_ms, 0}}) {
    double seconds = 0;
    if (auto v = flags.Get(flag)) {
      if (!absl::SimpleAtod(*v, &seconds) || seconds < min || seconds > 31536000) {
        return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be a number of seconds",
                                                       min > 0 ? " > 0" : " >= 0 (0: off)"));
      }
      *target = static_cast<int64_t>(seconds * 1000);
    }
  }
  return absl::OkStatus();
}

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

std::string EnvOr(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// --backup-azure-*: the Blob Storage destination, or nullptr when no account is named.
absl::StatusOr<std::unique_ptr<AzureBlobDestination>> LoadBackupAzure(
    const ParsedFlags& flags, const std::optional<AzureSettings>& azure) {
  std::optional<std::string> account = flags.Get("backup-azure-account");
  if (!account) {
    for (const char* f : {"backup-azure-container", "backup-azure-endpoint", "backup-azure-ca-file",
                          "backup-azure-block-size"}) {
      if (flags.Get(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", f, " needs --backup-azure-account (the storage account)"));
      }
    }
    return std::unique_ptr<AzureBlobDestination>();
  }
  AzureBlobConfig config;
  config.account = *account;
  config.container = flags.Get("backup-azure-container").value_or("keyward-backups");
  config.endpoint = flags.Get("backup-azure-endpoint").value_or("");
  if (auto v = flags.Get("backup-azure-block-size");
      v && !absl::SimpleAtoi(*v, &config.block_size)) {
    return absl::InvalidArgumentError("--backup-azure-block-size must be a number of bytes");
  }
  HttpClientOptions http;
  http.ca_file = flags.Get("backup-azure-ca-file").value_or("");
  http.request_timeout_ms = 120'000;  // a block of several MiB on a slow link
  http.max_total = std::chrono::milliseconds(300'000);
  std::string key = EnvOr("AZURE_STORAGE_KEY");
  std::shared_ptr<EntraTokenSource> tokens;
  if (key.empty() && azure) {
    // keyward's own Entra identity, reached the way the Key Vault provider reaches it.
    tokens = std::make_shared<EntraTokenSource>(azure->identity,
                                                std::make_shared<HttpClient>(azure->http));
  }
  auto dest = AzureBlobDestination::New(std::move(config), std::move(key), std::move(tokens),
                                        std::make_shared<HttpClient>(http));
  WipeString(key);
  return dest;
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
  ASSIGN_OR_RETURN(ServiceIdentity identity, LoadServiceIdentity(flags, data_dir));
  // The KMS providers' settings and keyward's identity in each cloud (serve_kms.cc).
  ASSIGN_OR_RETURN(ServeKmsSettings kms_settings, LoadServeKms(flags, identity));
  const std::optional<AzureSettings>& azure = kms_settings.azure;
  std::unique_ptr<KmsFactory> kms = make_kms(escrow, azure, std::move(kms_settings.aws));

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
                   LoadBackupAzure(flags, azure));
  if (backup_azure) {
    control.SetBackups(backup_records.get(), backup_azure.get());
    control.AddBackupDestination(backup_dir.get());
    printf("keyward: new backups go to %s\n", backup_azure->Describe().c_str());
  } else {
    control.SetBackups(backup_records.get(), backup_dir.get());
  }
  std::unique_ptr<LocalDirectoryDestination> backup_secondary;
  if (auto dir = flags.Get("backup-secondary-dir")) {
    ASSIGN_OR_RETURN(backup_secondary, LocalDirectoryDestination::New(*dir));
    if (backup_secondary->Describe() == backup_dir->Describe()) {
      return absl::InvalidArgumentError("--backup-secondary-dir must differ from --backup-dir");
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

// `--config FILE`: a JSON object of the same flags, {"data-dir": "...", "azure-managed-identity":
// true}; flags on the command line win.
absl::StatusOr<std::vector<std::string>> WithConfigFile(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  std::string path;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      path = args[++i];
    } else if (args[i].rfind("--config=", 0) == 0) {
      path = args[i].substr(9);
    } else {
      out.push_back(args[i]);
    }
  }
  if (path.empty()) return out;
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, 1 << 20));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object())
    return absl::InvalidArgumentError(
        absl::StrCat("--config ", path, " must hold a JSON object of flags"));
  for (const auto& [k, v] : j.items()) {
    bool given = false;
    for (const auto& a : out) given |= a == "--" + k || a.rfind("--" + k + "=", 0) == 0;
    if (given) continue;
    if (v.is_boolean()) {
      if (v.get<bool>()) out.push_back("--" + k);
    } else if (v.is_string() || v.is_number()) {
      out.push_back("--" + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--config: '", k, "' must be a string, number or boolean"));
    }
  }
  return out;
}

int RunServe(const std::vector<std::string>& raw_args, const KmsFactoryMaker& make_kms) {
  auto args = WithConfigFile(raw_args);
  if (!args.ok()) {
    fprintf(stderr, "keyward serve: %s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  auto flags =
      ParseFlags(*args,
                 {"data-dir",
                  "listen",
                  "cluster-host",
                  "advertise-host",
                  "tls-cert",
                  "cluster-tls-cert",
                  "cluster-tls-key",
                  "log-level",
                  "tls-key",
                  "escrow-key-file",
                  "backup-dir",
                  "backup-azure-account",
                  "backup-azure-container",
                  "backup-azure-endpoint",
                  "backup-azure-ca-file",
                  "backup-azure-block-size",
                  "backup-secondary-dir",
                  "data-key-rotation-days",
                  "max-bulk-bytes",
                  "max-clients",
                  "max-clients-per-cluster",
                  "max-input-bytes",
                  "max-client-memory",
                  "auth-timeout",
                  "idle-timeout",
                  "durability",
                  "key-check-interval",
                  "key-loss-grace",
                  "key-auto-restore",
                  "storage-check-interval",
                  "azure-app-id",
                  "azure-app-name",
                  "aws-principal-arn",
                  "azure-tenant-id",
                  "azure-client-id",
                  "azure-imds-url",
                  "azure-authority-host",
                  "azure-management-host",
                  "azure-vault-url-template",
                  "azure-connect-to",
                  "azure-ca-file",
                  "azure-api-version",
                  "azure-client-certificate",
                  "azure-managed-hsm-url-template",
                  "aws-endpoint-url",
                  "aws-ca-file"},
                 {"help", "azure-managed-identity", "allow-core-dumps", "allow-port-change",
                  "tls-self-signed", "insecure-plaintext", "aws-use-fips-endpoint"});
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
  absl::Status st = Serve(*flags, make_kms);
  if (!st.ok()) {
    fprintf(stderr, "keyward serve: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace keyward
