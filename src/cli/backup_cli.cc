// `keyward backup create|list|get|delete|restore`: the REST API's backup routes from the command
// line. `create --wait` polls until the backup has completed or failed, with progress on stderr.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/api_client.h"
#include "cli/cli.h"
#include "cli/name_resolver.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr char kBackupUsage[] = R"(usage:
  keyward backup create CLUSTER [--wait]      encrypted backup under the cluster's key
                                              (CLUSTER: its name or ID);
                                              --wait: until completed or failed (exit 1)
  keyward backup list CLUSTER                 the cluster's backups, newest first
  keyward backup get BACKUP_ID
  keyward backup delete BACKUP_ID             removes its objects, then its record
  keyward backup restore BACKUP_ID --name N   a new cluster in the backup's project, only
                                              after the whole backup is verified; from its
                                              dual-region copy when the primary fails
                                              (--from-copy: from the copy only)

common flags:
  --server URL     API address (env KEYWARD_SERVER, default http://127.0.0.1:7070)
  --token T        API token (env KEYWARD_TOKEN; default: owner.token in --data-dir)
  --output FORMAT  table (default) or json
  --cacert FILE    CA certificate of an https:// server (env KEYWARD_CACERT)
)";

int Usage(const std::string& problem) {
  fprintf(stderr, "keyward backup: %s\n%s", problem.c_str(), kBackupUsage);
  return 2;
}

uint64_t U(const json& j, const char* field) {
  return j.contains(field) && j[field].is_number_unsigned() ? j[field].get<uint64_t>() : 0;
}

void PrintBackups(const json& items) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : items) {
    rows.push_back({Str(b, "id"), Str(b, "cluster_id"), Str(b, "state"),
                    std::to_string(U(b, "bytes")), std::to_string(U(b, "files")),
                    Str(b, "kms_key_id") + " v" + Str(b, "key_version"), Str(b, "created_at"),
                    Str(b, "error").substr(0, 60)});
  }
  PrintTable({"ID", "CLUSTER", "STATE", "BYTES", "FILES", "KEY", "CREATED", "ERROR"}, rows);
}

// Polls until the backup leaves `running`; a progress line (bytes, rate, ETA) on a terminal.
std::optional<json> WaitForBackup(const ApiClient& api, const std::string& id) {
  bool tty = isatty(STDERR_FILENO) != 0;
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    auto r = api.Call("GET", "/api/v1/backups/" + id);
    if (!r || Str(*r, "state") != "running") {
      if (tty) fprintf(stderr, "\n");
      return r;
    }
    if (tty) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double done = static_cast<double>(U(*r, "bytes")),
             total = static_cast<double>(U(*r, "bytes_total"));
      double rate = secs > 0 ? done / secs : 0;
      double eta = rate > 0 && total > done ? (total - done) / rate : 0;
      fprintf(stderr, "\rbacking up: %.1f of %.1f MiB, %.1f MiB/s, ETA %.0f s   ", done / 1048576,
              total / 1048576, rate / 1048576, eta);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

int RunBackupCli(const std::vector<std::string>& args) {
  std::set<std::string> valued = kCommonValuedFlags;
  valued.insert("name");
  auto flags = ParseFlags(args, valued, {"help", "wait", "from-copy"});
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (flags->Has("help")) {
    printf("%s", kBackupUsage);
    return 0;
  }
  if (flags->positional.size() != 2) return Usage("give a command and exactly one ID");
  const std::string& verb = flags->positional[0];
  const std::string& id = flags->positional[1];
  auto api = ApiClient::FromFlags(*flags);
  if (!api) return 2;
  std::optional<json> r;
  std::string cluster = id;  // create and list take a cluster, by name or id
  if (verb == "create" || verb == "list") {
    auto resolved = ResolveCluster(*api, id, std::nullopt);
    if (!resolved) return 1;
    cluster = *resolved;
  }
  if (verb == "create") {
    r = api->Call("POST", "/api/v1/clusters/" + cluster + "/backups");
    if (r && flags->Has("wait")) r = WaitForBackup(*api, Str(*r, "id"));
    if (!r) return 1;
    api->Print(*r, [&] { PrintBackups(json::array({*r})); });
    if (Str(*r, "state") == "failed") {
      fprintf(stderr, "backup %s failed: %s\n", Str(*r, "id").c_str(), Str(*r, "error").c_str());
      return 1;
    }
    return 0;
  }
  if (verb == "list") {
    r = api->Call("GET", "/api/v1/clusters/" + cluster + "/backups?page_size=500");
    if (!r) return 1;
    api->Print((*r)["items"], [&] { PrintBackups((*r)["items"]); });
    return 0;
  }
  if (verb == "get" || verb == "delete") {
    r = api->Call(verb == "get" ? "GET" : "DELETE", "/api/v1/backups/" + id);
    if (!r) return 1;
    api->Print(*r, [&] {
      PrintBackups(json::array({*r}));
      if (verb == "delete") printf("backup %s and its objects were deleted\n", id.c_str());
    });
    return 0;
  }
  if (verb == "restore") {
    auto name = flags->Get("name");
    if (!name || name->empty()) return Usage("--name is required for restore");
    json body = {{"name", *name}};
    if (flags->Has("from-copy")) body["from_copy"] = true;
    r = api->Call("POST", "/api/v1/backups/" + id + ":restore", &body);
    if (!r) return 1;
    api->Print(*r, [&] {
      printf("restored backup %s as cluster %s (%s), %s\n", id.c_str(), Str(*r, "id").c_str(),
             Str(*r, "name").c_str(), Str(*r, "state").c_str());
      const json from = r->value("restored_from", json::object());
      if (from.value("copy", false)) {
        std::string why = from.value("primary_error", "");
        printf("read from the dual-region copy in %s%s%s\n", from.value("destination", "").c_str(),
               why.empty() ? "" : " because the primary failed: ", why.c_str());
      }
      printf("endpoint: %s\npassword: %s   (shown once; keep it)\n", Str(*r, "endpoint").c_str(),
             Str(*r, "password").c_str());
    });
    return 0;
  }
  return Usage("unknown command '" + verb + "'");
}

}  // namespace keyward
