#include "cli/serve_flags.h"

#include <set>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

// The server's own flags; each KMS provider's come from its registry module.
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
  --backup-secondary-azure-account A  dual-region copies to Azure Blob Storage account A
                            instead (Shared Key from AZURE_SECONDARY_STORAGE_KEY, else
                            AZURE_STORAGE_KEY when A is --backup-azure-account, else Entra);
                            --backup-secondary-azure-{container,endpoint,ca-file,block-size}
                            as for --backup-azure-*
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
  --log-level L             debug, info (default), warn or error: the least severe line
                            written to stderr (one JSON object per line: time, level, event,
                            msg, ids; a line per API request)
  --mariadb-user NAME       the OS account mariadb clusters' mariadbd (and mariadb-backup) run
                            as when keyward runs as root (default keyward-mariadb, made by
                            scripts/bootstrap); without root they run as keyward's own user
  --allow-core-dumps        for debugging only: let the process dump core and keep key buffers
                            in dumps (by default neither; files are always created 0600)
)";

const std::set<std::string>& ServerValuedFlags() {
  static const std::set<std::string> kFlags = {"data-dir",
                                               "listen",
                                               "cluster-host",
                                               "advertise-host",
                                               "tls-cert",
                                               "cluster-tls-cert",
                                               "cluster-tls-key",
                                               "mariadb-user",
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
                                               "backup-secondary-azure-account",
                                               "backup-secondary-azure-container",
                                               "backup-secondary-azure-endpoint",
                                               "backup-secondary-azure-ca-file",
                                               "backup-secondary-azure-block-size",
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
                                               "storage-check-interval"};
  return kFlags;
}

const std::set<std::string>& ServerBooleanFlags() {
  static const std::set<std::string> kFlags = {"help", "allow-core-dumps", "allow-port-change",
                                               "tls-self-signed", "insecure-plaintext"};
  return kFlags;
}

// The layout of the server's own help: the flag and its value in 28 columns, then the text,
// wrapped at 98 columns with continuation lines under it.
constexpr size_t kHelpColumn = 28;
constexpr size_t kHelpWidth = 98;

// `text` in lines of at most `width` columns (words longer than that stand alone); '\n'
// forces a break.
std::vector<std::string> WrapHelpText(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  for (absl::string_view paragraph : absl::StrSplit(text, '\n')) {
    std::string line;
    for (absl::string_view word : absl::StrSplit(paragraph, ' ', absl::SkipEmpty())) {
      if (!line.empty() && line.size() + 1 + word.size() > width) {
        lines.push_back(line);
        line.clear();
      }
      absl::StrAppend(&line, line.empty() ? "" : " ", word);
    }
    lines.push_back(line);
  }
  return lines;
}

std::string ProviderFlagsHelp(const KmsProviderModule& module) {
  std::vector<KmsServeFlag> flags = module.serve_flags();
  if (flags.empty()) return "";
  std::string heading = absl::StrCat(module.display_name(), " (", module.name(), ")");
  std::string note = module.serve_help_note();
  if (!note.empty()) absl::StrAppend(&heading, ": ", note);
  std::string out = "\n";
  for (const std::string& line : WrapHelpText(heading + ":", kHelpWidth)) {
    absl::StrAppend(&out, line, "\n");
  }
  for (const KmsServeFlag& f : flags) {
    std::string head = absl::StrCat("  --", f.name, f.value.empty() ? "" : " ", f.value);
    head.append(head.size() + 2 <= kHelpColumn ? kHelpColumn - head.size() : 2, ' ');
    std::vector<std::string> lines = WrapHelpText(f.help, kHelpWidth - kHelpColumn);
    for (size_t i = 0; i < lines.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? head : std::string(kHelpColumn, ' '), lines[i], "\n");
    }
  }
  return out;
}

}  // namespace

std::string ServeHelp(const KmsProviderRegistry& registry) {
  std::string out = kServeHelp;
  for (const KmsProviderModule* m : registry.Modules())
    absl::StrAppend(&out, ProviderFlagsHelp(*m));
  return out;
}

absl::StatusOr<ParsedFlags> ParseServeFlags(const std::vector<std::string>& args,
                                            const KmsProviderRegistry& registry) {
  std::set<std::string> valued = ServerValuedFlags(), booleans = ServerBooleanFlags();
  for (const KmsProviderModule* m : registry.Modules()) {
    for (const KmsServeFlag& f : m->serve_flags()) {
      if (valued.count(f.name) || booleans.count(f.name)) {
        return absl::InternalError(absl::StrCat("KMS provider ", m->name(), " claims the flag --",
                                                f.name,
                                                ", which another part of keyward serve "
                                                "already has"));
      }
      (f.value.empty() ? booleans : valued).insert(f.name);
    }
  }
  return ParseFlags(args, valued, booleans);
}

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

}  // namespace keyward
