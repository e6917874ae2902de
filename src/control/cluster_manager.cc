#include "control/cluster_manager.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/bytes.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::Status ValidateClusterName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63 && name[0] != '-';
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        "cluster name must be 1-63 characters of a-z, 0-9 and '-', not starting with '-'");
  }
  return absl::OkStatus();
}

ClusterManager::ClusterManager(ClusterManagerOptions options, MetadataStore& metadata,
                               MasterKeyProvider& master_key, RespServer& resp,
                               std::shared_ptr<SharedStorageResources> shared)
    : options_(std::move(options)),
      metadata_(metadata),
      master_key_(master_key),
      resp_(resp),
      shared_(std::move(shared)) {}

ClusterManager::~ClusterManager() { Shutdown(); }

std::string ClusterManager::ClusterDir(const std::string& id) const {
  return options_.data_dir + "/clusters/" + id;
}

ClusterView ClusterManager::View(const ClusterRecord& r) const {
  ClusterView v;
  v.record = r;
  if (r.port > 0) v.endpoint = absl::StrCat(options_.cluster_host, ":", r.port);
  return v;
}

absl::Status ClusterManager::OpenAndServe(ClusterRecord& record, bool create) {
  ClusterStoreOptions so;
  so.dir = ClusterDir(record.id);
  so.cluster_id = record.id;
  so.data_key_rotation_seconds = options_.data_key_rotation_seconds;
  absl::StatusOr<std::unique_ptr<ClusterStore>> store =
      create ? ClusterStore::Create(so, master_key_, shared_)
             : ClusterStore::Open(so, master_key_, shared_);
  if (!store.ok()) return store.status();
  auto endpoint = std::make_shared<ClusterEndpoint>();
  endpoint->cluster_id = record.id;
  ASSIGN_OR_RETURN(endpoint->password_sha256, HexDecode(record.password_sha256_hex));
  endpoint->store = std::shared_ptr<ClusterStore>(std::move(*store));
  auto port = resp_.AddCluster(endpoint, options_.cluster_host, record.port);
  if (!port.ok() && record.port != 0) {
    fprintf(stderr, "keyward: cluster %s: port %d is taken (%s); choosing a new port\n",
            record.id.c_str(), record.port, std::string(port.status().message()).c_str());
    port = resp_.AddCluster(endpoint, options_.cluster_host, 0);
  }
  if (!port.ok()) return port.status();
  record.port = *port;
  open_[record.id] = endpoint->store;
  return absl::OkStatus();
}

absl::Status ClusterManager::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(MakeDirs(options_.data_dir + "/clusters", 0700));
  ASSIGN_OR_RETURN(std::vector<ClusterRecord> records, metadata_.ListClusters());
  for (ClusterRecord& r : records) {
    if (r.state == "creating" || r.state == "deleting") {
      // A crash interrupted the change: a cluster never handed out is undone, a deletion finished.
      fprintf(stderr, "keyward: cluster %s was interrupted while %s; removing it\n", r.id.c_str(),
              r.state.c_str());
      RETURN_IF_ERROR(Shred(r.id));
      RETURN_IF_ERROR(metadata_.DeleteCluster(r.id));
      continue;
    }
    int old_port = r.port;
    absl::Status st = OpenAndServe(r, /*create=*/false);
    if (!st.ok()) {
      fprintf(stderr, "keyward: cluster %s cannot be opened: %s\n", r.id.c_str(),
              std::string(st.message()).c_str());
      r.state = "unavailable";
      continue;  // serve the others; the API shows the state
    }
    if (r.port != old_port) RETURN_IF_ERROR(metadata_.UpdateCluster(r));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterView> ClusterManager::Create(const std::string& name) {
  RETURN_IF_ERROR(ValidateClusterName(name));
  std::lock_guard<std::mutex> lock(mu_);
  ClusterRecord r;
  ASSIGN_OR_RETURN(std::string suffix, RandomHex(8));
  r.id = "c-" + suffix;
  r.name = name;
  r.state = "creating";
  r.created_at = NowUnix();
  ASSIGN_OR_RETURN(std::string password, RandomHex(16));
  r.password_sha256_hex = Sha256Hex(password);
  RETURN_IF_ERROR(metadata_.InsertCluster(r));
  absl::Status st = OpenAndServe(r, /*create=*/true);
  if (st.ok()) {
    r.state = "available";
    st = metadata_.UpdateCluster(r);
  }
  if (!st.ok()) {
    resp_.RemoveCluster(r.id);
    open_.erase(r.id);
    Shred(r.id).IgnoreError();
    metadata_.DeleteCluster(r.id).IgnoreError();
    return st;
  }
  ClusterView v = View(r);
  v.password = std::move(password);
  WipeString(password);
  return v;
}

absl::StatusOr<std::vector<ClusterView>> ClusterManager::List() {
  ASSIGN_OR_RETURN(std::vector<ClusterRecord> records, metadata_.ListClusters());
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ClusterView> out;
  for (auto& r : records) {
    if (r.state == "available" && open_.count(r.id) == 0) r.state = "unavailable";
    out.push_back(View(r));
  }
  return out;
}

absl::StatusOr<ClusterView> ClusterManager::Get(const std::string& id) {
  ASSIGN_OR_RETURN(std::optional<ClusterRecord> r, metadata_.GetCluster(id));
  if (!r) return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
  std::lock_guard<std::mutex> lock(mu_);
  if (r->state == "available" && open_.count(r->id) == 0) r->state = "unavailable";
  return View(*r);
}

absl::Status ClusterManager::Shred(const std::string& id) {
  std::string dir = ClusterDir(id);
  // Destroy the wrapped keys first: once the dictionary is gone the files are unreadable noise,
  // whatever happens to the rest of the deletion.
  std::string dict = dir + "/" + KeyDictionary::kFileName;
  if (unlink(dict.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("cannot remove ", dict, ": ", ErrnoText(errno)));
  }
  if (access(dir.c_str(), F_OK) == 0) RETURN_IF_ERROR(FsyncDirectory(dir));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status ClusterManager::Delete(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(std::optional<ClusterRecord> r, metadata_.GetCluster(id));
  if (!r) return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
  r->state = "deleting";
  RETURN_IF_ERROR(metadata_.UpdateCluster(*r));
  resp_.RemoveCluster(id);
  open_.erase(id);  // the last reference: the store closes here
  RETURN_IF_ERROR(Shred(id));
  return metadata_.DeleteCluster(id);
}

void ClusterManager::RotateDataKeys() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, store] : open_) {
    auto rotated = store->RotateDataKeyIfDue();
    if (!rotated.ok()) {
      fprintf(stderr, "keyward: cluster %s: data-key rotation failed: %s\n", id.c_str(),
              std::string(rotated.status().message()).c_str());
    } else if (*rotated) {
      fprintf(stderr, "keyward: cluster %s: new data key %u for new files\n", id.c_str(),
              store->dictionary().Current()->id);
    }
  }
}

void ClusterManager::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, store] : open_) resp_.RemoveCluster(id);
  open_.clear();
}

}  // namespace keyward
