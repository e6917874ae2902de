// Clusters: creation (the CMEK rules: dedicated tier, a tested key in the cluster's region),
// listing, reading, and the backup policy. State changes are in cluster_lifecycle.cc.
#include <algorithm>
#include <optional>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "control/regions.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "kms/escrow/escrow_module.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {

using control_internal::NewId;
using control_internal::ValidateName;
using control_internal::ValidateRegion;
using nlohmann::json;
namespace {

// "keyward key create … --key-arn <key_arn>": the flags a new key of `m` needs (required
// fields, and the first of each group of alternatives).
std::string KeyCreateFlags(const KmsProviderModule& m) {
  std::string out;
  std::set<std::string> groups;
  for (const KmsConfigField& f : m.config_fields()) {
    if (!f.required && (f.one_of.empty() || !groups.insert(f.one_of).second)) continue;
    std::string flag = f.name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    absl::StrAppend(&out, " --", flag, " <", f.name, ">");
  }
  return out;
}

}  // namespace

absl::StatusOr<ClusterCreated> ControlPlane::CreateCluster(const User& actor,
                                                           const std::string& project_id,
                                                           const ClusterRequest& req) {
  RETURN_IF_ERROR(ValidateName("cluster", req.name));
  ASSIGN_OR_RETURN(Project p,
                   Authorize(actor, project_id, Need::kMember, "cluster.create", req.name));
  if (req.tier != "dedicated" && req.tier != "starter") {
    return absl::InvalidArgumentError("tier must be dedicated or starter");
  }
  if (req.cloud_provider != "aws" && req.cloud_provider != "azure" && req.cloud_provider != "gcp") {
    return absl::InvalidArgumentError("cloud_provider must be aws, azure or gcp");
  }
  RETURN_IF_ERROR(ValidateCloudRegion(req.cloud_provider, req.region));
  Durability durability = runtime_.default_durability();
  if (req.durability) {
    std::optional<Durability> chosen = ParseDurability(*req.durability);
    if (!chosen) {
      return absl::InvalidArgumentError(absl::StrCat(
          "durability must be always (WAL synced before each reply), everysec (synced once a "
          "second) or none (the OS decides), not '",
          *req.durability, "'"));
    }
    durability = *chosen;
  }
  ClusterEngine engine = ClusterEngine::kKv;
  if (req.engine) {
    std::optional<ClusterEngine> chosen = ParseClusterEngine(*req.engine);
    if (!chosen) {
      return absl::InvalidArgumentError(
          absl::StrCat("engine must be ", kClusterEngineChoices, ", not '", *req.engine, "'"));
    }
    engine = *chosen;
  }
  // Galera needs three nodes for a quorum that survives one failure; two would stop at the
  // first. kv clusters are one RocksDB store.
  int nodes = 1;
  if (req.nodes) {
    if (engine == ClusterEngine::kMariadb && *req.nodes != 1 && *req.nodes != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nodes must be 1 (one mariadbd) or 3 (a MariaDB Galera cluster: any node serves reads "
          "and writes and it survives the loss of one), not ",
          *req.nodes));
    }
    if (engine == ClusterEngine::kKv && *req.nodes != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("kv clusters have 1 node, not ", *req.nodes,
                       "; for 3 nodes create a mariadb cluster (engine mariadb)"));
    }
    nodes = static_cast<int>(*req.nodes);
  }
  EncryptionKey key;
  if (p.cmek_enabled) {
    if (req.tier != "dedicated") {
      return absl::FailedPreconditionError(absl::StrCat(
          "CMEK-enabled projects can only create dedicated clusters; use tier dedicated, or a "
          "project without CMEK for ",
          req.tier, " clusters"));
    }
    const KmsProviderModule* module = KmsProviderRegistry::Global().ForCloud(req.cloud_provider);
    if (module == nullptr) {
      std::vector<std::string> clouds;
      for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
        if (m->customer_managed() && !m->cloud().empty()) clouds.push_back(m->cloud());
      }
      std::sort(clouds.begin(), clouds.end());
      return absl::FailedPreconditionError(absl::StrCat(
          "CMEK-enabled projects can only create clusters on ", absl::StrJoin(clouds, " or "),
          ", not ", req.cloud_provider, "; choose ", absl::StrJoin(clouds, " or ")));
    }
    std::string provider = module->name();
    ASSIGN_OR_RETURN(std::vector<EncryptionKey> keys, metadata_.ListKeys(p.id, {0, 1 << 30}));
    std::optional<EncryptionKey> match;
    for (const auto& k : keys) {
      if (k.provider == provider && k.region == req.region) match = k;
    }
    std::string create_cmd =
        absl::StrCat("keyward key create --project ", p.id, " --provider ", provider, " --region ",
                     req.region, KeyCreateFlags(*module));
    if (!match) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no encryption key for ", req.cloud_provider, " in region ", req.region,
          " in this CMEK project, so a cluster cannot be created there. Create one: ", create_cmd,
          ", follow the steps it prints, then: keyward key test --project ", p.id, " <key-id>"));
    }
    if (match->state != "active") {
      return absl::FailedPreconditionError(absl::StrCat(
          "the encryption key ", match->id, " for ", req.cloud_provider, "/", req.region, " is ",
          match->state, " (", match->status_message,
          "); finish its setup, then: keyward key test --project ", p.id, " ", match->id));
    }
    key = *match;
  } else {
    ASSIGN_OR_RETURN(std::vector<EncryptionKey> keys, metadata_.ListKeys(p.id, {0, 1 << 30}));
    bool found = false;
    for (const auto& k : keys) {
      if (k.provider == kEscrowProviderName) {
        key = k;
        found = true;
      }
    }
    if (!found)
      return absl::DataLossError(absl::StrCat("project ", p.id, " has no escrow key record"));
  }

  Cluster c;
  ASSIGN_OR_RETURN(c.id, NewId("c-"));
  c.project_id = p.id;
  c.name = req.name;
  c.cloud_provider = req.cloud_provider;
  c.region = req.region;
  c.tier = req.tier;
  c.state = "creating";
  c.encryption_key_id = key.id;
  c.durability = std::string(DurabilityName(durability));
  c.engine = std::string(ClusterEngineName(engine));
  c.nodes = nodes;
  c.created_at = c.updated_at = Now();
  ASSIGN_OR_RETURN(std::string password, RandomHex(16));
  c.password_sha256_hex = Sha256Hex(password);
  absl::Status st = metadata_.InsertCluster(c);
  if (!st.ok()) {
    Audit(&actor, p.id, "cluster.create", req.name, &key, st);
    return st;
  }
  // Nobody else can name the new cluster yet; the claim keeps the monitor off it all the same.
  Claim claim = TryClaimCluster(c.id);
  st = OpenCluster(c, /*create=*/true, password);
  if (st.ok()) st = Transition(c, "available", "", "", c.port);
  if (!st.ok()) {
    absl::Status undo = runtime_.Shred(c.id);
    Transition(c, "failed", std::string(st.message())).IgnoreError();
    Audit(&actor, p.id, "cluster.create", c.id, &key, st);
    if (!undo.ok()) LogError("cluster.create_undo_failed", std::string(undo.message()));
    return st;
  }
  RecordProtection(c.id, /*wrapped_now=*/true);
  Audit(&actor, p.id, "cluster.create", c.id, &key, absl::OkStatus(),
        absl::StrCat(c.cloud_provider, "/", c.region, " ", c.tier, ", engine ", c.engine,
                     ", durability ", c.durability));
  ASSIGN_OR_RETURN(std::optional<Cluster> stored, metadata_.GetCluster(c.id));
  return ClusterCreated{stored ? *stored : c, password};
}

absl::StatusOr<std::vector<Cluster>> ControlPlane::ListClusters(const User& actor,
                                                                const std::string& project_id,
                                                                Page page) {
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kView).status());
  ASSIGN_OR_RETURN(std::vector<Cluster> clusters, metadata_.ListClusters(project_id, page));
  for (Cluster& c : clusters) c = WithUnrecorded(std::move(c));
  return clusters;
}

absl::StatusOr<Cluster> ControlPlane::GetCluster(const User& actor, const std::string& id) {
  ASSIGN_OR_RETURN(Cluster c, LoadCluster(actor, id, Need::kView, nullptr));
  return WithUnrecorded(std::move(c));
}

absl::StatusOr<Cluster> ControlPlane::SetBackupPolicy(const User& actor, const std::string& id,
                                                      const BackupPolicy& policy) {
  Project p;
  ASSIGN_OR_RETURN(Cluster c, LoadCluster(actor, id, Need::kMember, &p, "cluster.backup_policy"));
  static const std::regex kSchedule("^(hourly|daily|weekly|([01][0-9]|2[0-3]):[0-5][0-9])$");
  if (!std::regex_match(policy.schedule, kSchedule)) {
    return absl::InvalidArgumentError(
        "schedule must be hourly, daily, weekly or a daily time HH:MM (UTC)");
  }
  if (policy.retention_days < 1 || policy.retention_days > 3650) {
    return absl::InvalidArgumentError("retention_days must be between 1 and 3650");
  }
  if (policy.dual_region && p.cmek_enabled) {
    absl::Status refused = absl::FailedPreconditionError(absl::StrCat(
        "dual-region backup is not supported in CMEK-enabled projects; set dual_region.enabled "
        "to false (backups stay in ",
        c.region, ", encrypted under the project's key)"));
    Audit(&actor, c.project_id, "cluster.backup_policy", c.id, nullptr, refused);
    return refused;
  }
  if (policy.dual_region) RETURN_IF_ERROR(ValidateRegion(policy.secondary_region));
  json j = {{"schedule", policy.schedule},
            {"retention_days", policy.retention_days},
            {"dual_region",
             {{"enabled", policy.dual_region}, {"secondary_region", policy.secondary_region}}}};
  // Only the policy column changes: a pause or a key cut racing this request keeps its state.
  ASSIGN_OR_RETURN(bool set, metadata_.SetClusterBackupPolicy(c.id, j.dump(), Now()));
  absl::Status st = set ? absl::OkStatus()
                        : absl::FailedPreconditionError(absl::StrCat(
                              "cannot set the backup policy of cluster ", c.id, ": it is deleted"));
  Audit(&actor, c.project_id, "cluster.backup_policy", c.id, nullptr, st, j.dump());
  RETURN_IF_ERROR(st);
  ASSIGN_OR_RETURN(std::optional<Cluster> stored, metadata_.GetCluster(c.id));
  if (!stored) return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
  return *stored;
}

}  // namespace keyward
