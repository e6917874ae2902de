#include "control/control_plane.h"

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/key_settings.h"
#include "control/regions.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "kms/escrow/escrow_module.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr char kDefaultProject[] = "default";

absl::Status ValidateName(const std::string& what, const std::string& name) {
  static const std::regex kName("^[a-z0-9][a-z0-9-]{0,62}$");
  if (!std::regex_match(name, kName)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " name must be 1-63 characters of a-z, 0-9 and '-', not starting with '-'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRegion(const std::string& region) {
  static const std::regex kRegion("^[a-z0-9][a-z0-9-]{1,40}$");
  if (!std::regex_match(region, kRegion)) {
    return absl::InvalidArgumentError(
        "region must be a cloud region name such as eastus or us-east-1 (a-z, 0-9, '-')");
  }
  return absl::OkStatus();
}

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

absl::StatusOr<std::string> NewId(const char* prefix) {
  ASSIGN_OR_RETURN(std::string hex, RandomHex(8));
  return absl::StrCat(prefix, hex);
}

}  // namespace

ControlPlane::ControlPlane(MetadataStore& metadata, KmsFactory& kms, ClusterRuntime& runtime,
                           ServiceIdentity identity, std::function<int64_t()> now_ms)
    : metadata_(metadata),
      kms_(kms),
      runtime_(runtime),
      identity_(std::move(identity)),
      now_ms_(now_ms ? std::move(now_ms) : SystemNowMs) {
  // The runtime serves each cluster with the engine its record names.
  runtime_.SetEngineLookup([this](const std::string& id) {
    auto c = metadata_.GetCluster(id);
    return c.ok() && *c ? ParseClusterEngine((*c)->engine).value_or(ClusterEngine::kKv)
                        : ClusterEngine::kKv;
  });
}

absl::StatusOr<std::string> ControlPlane::Bootstrap() {
  ASSIGN_OR_RETURN(std::optional<std::string> existing, metadata_.OrganizationId());
  if (existing) return absl::AlreadyExistsError("organization already exists");
  ASSIGN_OR_RETURN(std::string org_id, NewId("org-"));
  User owner;
  ASSIGN_OR_RETURN(owner.id, NewId("u-"));
  owner.org_id = org_id;
  owner.name = "owner";
  owner.org_role = "owner";
  owner.created_at = Now();
  ASSIGN_OR_RETURN(std::string token, RandomHex(24));
  token = "kw_" + token;
  RETURN_IF_ERROR(
      metadata_.Bootstrap(org_id, "default", owner, {Sha256Hex(token), 0, "", "owner"}));
  RETURN_IF_ERROR(CreateProject(owner, kDefaultProject, false).status());
  return token;
}

absl::StatusOr<std::string> ControlPlane::DefaultProjectId() {
  ASSIGN_OR_RETURN(std::optional<std::string> org, metadata_.OrganizationId());
  if (!org) return absl::FailedPreconditionError("no organization yet");
  ASSIGN_OR_RETURN(std::vector<Project> projects,
                   metadata_.ListProjects(*org, std::nullopt, {0, 1}));
  if (projects.empty() || projects[0].name != kDefaultProject) {
    return absl::NotFoundError("the default project is gone; name a project with --project");
  }
  return projects[0].id;
}

absl::StatusOr<User> ControlPlane::Authenticate(const std::string& token) {
  if (token.empty()) {
    // Neutral: the API says what is wrong, the CLI says how to pass a token.
    return absl::UnauthenticatedError("missing bearer token");
  }
  ASSIGN_OR_RETURN(std::optional<User> user, metadata_.UserByToken(Sha256Hex(token), Now()));
  if (!user) return absl::UnauthenticatedError("invalid or expired token");
  return *user;
}

absl::StatusOr<Project> ControlPlane::Authorize(const User& actor, const std::string& project_id,
                                                Need need, std::string_view action,
                                                std::string_view target) {
  ASSIGN_OR_RETURN(std::optional<Project> project, metadata_.GetProject(project_id));
  if (!project || project->org_id != actor.org_id) {
    return absl::NotFoundError(absl::StrCat("project '", project_id, "' does not exist"));
  }
  if (actor.org_role == "owner") return *project;
  ASSIGN_OR_RETURN(std::string role, metadata_.ProjectRole(project_id, actor.id));
  int have = role == "project_owner"    ? 3
             : role == "project_member" ? 2
             : role == "project_viewer" ? 1
                                        : 0;
  if (have == 0)
    return absl::NotFoundError(absl::StrCat("project '", project_id, "' does not exist"));
  int want = need == Need::kOwner ? 3 : need == Need::kMember ? 2 : 1;
  if (have < want) {
    absl::Status denied = absl::PermissionDeniedError(absl::StrCat(
        "your role ", role, " in project ", project_id, " does not allow this; it needs ",
        need == Need::kOwner ? "project_owner" : "project_member", " or an organization owner"));
    AuditDenied(actor, project_id, action, target.empty() ? project_id : target, denied);
    return denied;
  }
  return *project;
}

void ControlPlane::AuditDenied(const User& actor, const std::string& project_id,
                               std::string_view action, std::string_view target,
                               const absl::Status& denied) {
  // Who tried what on which resource; the actor is the user's id and name, never a token.
  Audit(&actor, project_id, action.empty() ? "request" : std::string(action), std::string(target),
        nullptr, absl::PermissionDeniedError(absl::StrCat("denied: ", denied.message())));
}

void ControlPlane::Audit(const User* actor, const std::string& project_id,
                         const std::string& action, const std::string& target,
                         const EncryptionKey* key, const absl::Status& result,
                         const std::string& detail, const std::string& key_version) {
  AuditEvent e;
  e.project_id = project_id;
  e.at_ms = now_ms_();
  e.actor = actor ? absl::StrCat(actor->id, " (", actor->name, ")") : "keyward (system)";
  e.action = action;
  e.target = target;
  if (key) e.key_id = absl::StrCat(key->id, " (", key->provider, " ", key->key_name, ")");
  e.key_version = key_version;
  e.result = result.ok() ? "success" : "failure";
  e.message = result.ok() ? detail : std::string(result.message());
  absl::Status st = metadata_.AppendAudit(e);
  if (!st.ok()) LogError("audit.write_failed", absl::StrCat("audit write failed: ", st.message()));
}

absl::StatusOr<Project> ControlPlane::CreateProject(const User& actor, const std::string& name,
                                                    bool cmek) {
  // Roles first, failing closed: only an organization owner or a project_creator creates
  // projects (a viewer elsewhere could otherwise make one and be its owner).
  if (actor.org_role != "owner" && !actor.project_creator) {
    absl::Status denied = absl::PermissionDeniedError(
        "creating a project needs the organization owner role or the organization-level "
        "project_creator role; ask an organization owner to create it or to grant you "
        "project_creator");
    AuditDenied(actor, actor.org_id, "project.create", name, denied);
    return denied;
  }
  RETURN_IF_ERROR(ValidateName("project", name));
  if (cmek && actor.org_role != "owner") {
    absl::Status denied = absl::PermissionDeniedError(
        "only an organization owner can create a CMEK-enabled project; ask an owner, or create "
        "the project with cmek_enabled=false");
    // No project exists yet: the event is the organization's (project_id = the org id).
    AuditDenied(actor, actor.org_id, "project.create", name, denied);
    return denied;
  }
  Project p;
  ASSIGN_OR_RETURN(p.id, NewId("p-"));
  p.org_id = actor.org_id;
  p.name = name;
  p.cmek_enabled = cmek;
  p.created_at = Now();
  std::optional<EncryptionKey> escrow;
  if (!cmek) {
    // Projects without CMEK encrypt under the service's escrow key, recorded like any key.
    EncryptionKey k;
    ASSIGN_OR_RETURN(k.id, NewId("k-"));
    k.project_id = p.id;
    k.provider = kEscrowProviderName;
    k.region = "*";
    k.state = "active";
    k.key_name = "escrow";
    k.config_json = "{}";
    k.status_message = "the service's escrow key";
    k.created_at = k.updated_at = p.created_at;
    escrow = k;
  }
  absl::Status st = metadata_.CreateProject(p, actor.id, escrow);
  Audit(&actor, p.id, "project.create", p.id, nullptr, st,
        cmek ? "cmek_enabled=true" : "cmek_enabled=false");
  RETURN_IF_ERROR(st);
  return p;
}

absl::StatusOr<std::vector<Project>> ControlPlane::ListProjects(const User& actor, Page page) {
  std::optional<std::string> member;
  if (actor.org_role != "owner") member = actor.id;
  return metadata_.ListProjects(actor.org_id, member, page);
}

absl::StatusOr<Project> ControlPlane::GetProject(const User& actor, const std::string& id) {
  return Authorize(actor, id, Need::kView);
}

absl::StatusOr<Project> ControlPlane::RenameProject(const User& actor, const std::string& id,
                                                    const std::string& name) {
  RETURN_IF_ERROR(ValidateName("project", name));
  ASSIGN_OR_RETURN(Project p, Authorize(actor, id, Need::kOwner, "project.rename"));
  absl::Status st = metadata_.RenameProject(id, name);
  Audit(&actor, id, "project.rename", id, nullptr, st, absl::StrCat(p.name, " -> ", name));
  RETURN_IF_ERROR(st);
  p.name = name;
  return p;
}

absl::StatusOr<std::pair<User, std::string>> ControlPlane::AddMember(const User& actor,
                                                                     const std::string& project_id,
                                                                     const std::string& name,
                                                                     const std::string& role,
                                                                     int64_t token_ttl_seconds) {
  RETURN_IF_ERROR(ValidateName("member", name));
  if (role != "project_owner" && role != "project_member" && role != "project_viewer") {
    return absl::InvalidArgumentError(
        "role must be project_owner, project_member or project_viewer");
  }
  if (token_ttl_seconds < 0) return absl::InvalidArgumentError("token_ttl_seconds must be >= 0");
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kOwner, "member.add", name).status());
  User u;
  ASSIGN_OR_RETURN(u.id, NewId("u-"));
  u.org_id = actor.org_id;
  u.name = name;
  u.org_role = "member";
  u.created_at = Now();
  ASSIGN_OR_RETURN(std::string token, RandomHex(24));
  token = "kw_" + token;
  int64_t expires = token_ttl_seconds > 0 ? Now() + token_ttl_seconds : 0;
  RETURN_IF_ERROR(
      metadata_.AddMember(project_id, u, role, {Sha256Hex(token), expires, "", "member"}));
  Audit(&actor, project_id, "member.add", u.id, nullptr, absl::OkStatus(), role);
  return std::make_pair(u, token);
}

nlohmann::json ControlPlane::Instructions(const EncryptionKey& key) const {
  return KeyInstructions(key, identity_);
}

nlohmann::json ControlPlane::KeyManagementServices() const {
  return keyward::KeyManagementServices(identity_);
}

nlohmann::json ControlPlane::KmsProviders() const {
  json out = json::array();
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    if (!m->customer_managed()) continue;
    json p = KmsProviderJson(*m);
    p["regions"] = KnownRegionsJson(m->cloud());
    p["configured"] = kms_.Configured(m->name());
    out.push_back(p);
  }
  return out;
}

absl::StatusOr<EncryptionKey> ControlPlane::CreateKey(const User& actor,
                                                      const std::string& project_id,
                                                      const KeyRequest& req) {
  ASSIGN_OR_RETURN(Project p, Authorize(actor, project_id, Need::kOwner, "encryption_key.create"));
  if (!p.cmek_enabled) {
    return absl::FailedPreconditionError(
        absl::StrCat("project ", p.id,
                     " was created without CMEK, and CMEK cannot be enabled later; create a "
                     "new project with cmek_enabled=true and create its clusters there"));
  }
  ASSIGN_OR_RETURN(
      KeySettings settings,
      ValidateKeySettings(req.provider, req.region, req.provider_config, req.config_field));
  EncryptionKey k;
  ASSIGN_OR_RETURN(k.id, NewId("k-"));
  k.project_id = p.id;
  k.provider = req.provider;
  k.region = req.region;
  k.state = "pending";
  k.created_at = k.updated_at = Now();
  k.key_name = settings.key_name;
  k.config_json = settings.config.dump();
  k.status_message = "waiting for you to create the key and grant access, then test it";
  absl::Status st = metadata_.InsertKey(k);
  Audit(&actor, p.id, "encryption_key.create", k.id, &k, st,
        absl::StrCat(k.provider, " ", k.region));
  RETURN_IF_ERROR(st);
  return k;
}

absl::StatusOr<std::vector<EncryptionKey>> ControlPlane::ListKeys(const User& actor,
                                                                  const std::string& project_id,
                                                                  Page page) {
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kView).status());
  return metadata_.ListKeys(project_id, page);
}

absl::StatusOr<EncryptionKey> ControlPlane::GetKey(const User& actor, const std::string& project_id,
                                                   const std::string& key_id) {
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kView).status());
  ASSIGN_OR_RETURN(std::optional<EncryptionKey> k, metadata_.GetKey(key_id));
  if (!k || k->project_id != project_id) {
    return absl::NotFoundError(
        absl::StrCat("encryption key '", key_id, "' does not exist in project ", project_id));
  }
  return *k;
}

absl::StatusOr<KeyTestOutcome> ControlPlane::TestKey(const User& actor,
                                                     const std::string& project_id,
                                                     const std::string& key_id) {
  RETURN_IF_ERROR(
      Authorize(actor, project_id, Need::kOwner, "encryption_key.test", key_id).status());
  ASSIGN_OR_RETURN(EncryptionKey key, GetKey(actor, project_id, key_id));
  return RunKeyTest(actor, std::move(key));
}

void ControlPlane::AuditSystem(const std::string& project_id, const std::string& action,
                               const std::string& target, const EncryptionKey* key,
                               const absl::Status& result, const std::string& key_version) {
  Audit(nullptr, project_id, action, target, key, result, "", key_version);
}

absl::StatusOr<KeyTestOutcome> ControlPlane::RunKeyTest(const User& actor, EncryptionKey key) {
  KeyTestOutcome out;
  auto check = [&](std::string step, bool ok, std::string message) {
    out.checks.push_back({std::move(step), ok, std::move(message)});
    return ok;
  };
  const KmsProviderModule* module = KmsProviderRegistry::Global().Find(key.provider);
  const KmsKeyRef ref = KmsKeyRef::FromRecord(key);
  const std::string wrap_op = module ? module->wrap_operation() : "wrap";
  const std::string unwrap_op = module ? module->unwrap_operation() : "unwrap";
  // False when the test never got an answer about the key (no client here, KMS unreachable):
  // then it proves nothing and the key keeps its state.
  bool reached = true;
  auto provider = kms_.ProviderFor(key);
  std::optional<KeyDescription> desc;
  if (!check("connect", provider.ok(),
             provider.ok() ? "provider configured" : std::string(provider.status().message()))) {
    reached = false;
  } else if (auto d = (*provider)->Describe(); !d.ok()) {
    reached = !absl::IsUnavailable(d.status()) && !absl::IsDeadlineExceeded(d.status());
    check("describe", false,
          absl::StrCat(d.status().message(), module ? module->DescribeHint(ref, d.status()) : ""));
  } else {
    desc = *d;
    check("describe", true,
          absl::StrCat("found ", d->key_id,
                       d->key_version.empty() ? "" : absl::StrCat(" version ", d->key_version)));
  }
  if (desc) {
    if (module) {
      for (KmsKeyCheck& c : module->DescriptionChecks(ref, *desc)) out.checks.push_back(c);
    }
    auto probe = RandomSecret(32);
    std::string context = "keyward-key-test:" + key.id;
    auto wrapped = probe.ok() ? (*provider)->Wrap(*probe, context)
                              : absl::StatusOr<WrappedKey>(probe.status());
    if (check("wrap", wrapped.ok(),
              wrapped.ok() ? absl::StrCat(wrap_op, " succeeded")
                           : std::string(wrapped.status().message()))) {
      auto unwrapped = (*provider)->Unwrap(*wrapped, context);
      bool same = unwrapped.ok() && unwrapped->Equals(*probe);
      check("unwrap", same,
            same             ? absl::StrCat(unwrap_op, " returned the wrapped bytes")
            : unwrapped.ok() ? absl::StrCat(unwrap_op, " returned different bytes")
                             : std::string(unwrapped.status().message()));
    }
  }
  std::vector<std::string> failures;
  for (const auto& c : out.checks) {
    if (!c.ok) failures.push_back(absl::StrCat(c.step, ": ", c.message));
  }
  std::string state = failures.empty() ? "active" : reached ? "failed" : key.state;
  std::string message = failures.empty() ? "tested: describe, wrap and unwrap succeeded"
                                         : absl::StrJoin(failures, "; ");
  if (!reached) {
    absl::StrAppend(&message, "; the test could not reach the KMS, so the key stays ", state,
                    ": fix that, then test again: keyward key test --project ", key.project_id, " ",
                    key.id);
  }
  // Written only if the record still has the settings just tested (a PATCH may have come).
  ASSIGN_OR_RETURN(bool recorded, metadata_.SetKeyTestResult(key, state, message, Now()));
  if (!recorded) {
    return absl::FailedPreconditionError(
        absl::StrCat("encryption key ", key.id,
                     " was changed or deleted while it was being tested; test it "
                     "again: keyward key test --project ",
                     key.project_id, " ", key.id));
  }
  key.state = state;
  key.status_message = message;
  key.updated_at = Now();
  // A test is a check of the key too: the record shows when it was last checked and the key
  // version the KMS named, before any cluster makes the health monitor check it.
  key.last_check_at = key.updated_at;
  key.last_check_error = failures.empty() ? "" : message;
  if (desc && !desc->key_version.empty()) key.current_version = desc->key_version;
  metadata_.RecordKeyCheck(key.id, key.last_check_at, key.last_check_error, key.current_version)
      .IgnoreError();
  Audit(&actor, key.project_id, "encryption_key.test", key.id, &key,
        failures.empty() ? absl::OkStatus() : absl::FailedPreconditionError(message), "",
        desc ? desc->key_version : "");
  out.key = key;
  return out;
}

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

absl::StatusOr<Cluster> ControlPlane::LoadCluster(const User& actor, const std::string& id,
                                                  Need need, Project* project,
                                                  std::string_view action) {
  ASSIGN_OR_RETURN(std::optional<Cluster> c, metadata_.GetCluster(id));
  if (!c) return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
  auto p = Authorize(actor, c->project_id, need, action, id);
  if (!p.ok()) {
    if (absl::IsNotFound(p.status()))
      return absl::NotFoundError(absl::StrCat("cluster '", id, "' does not exist"));
    return p.status();
  }
  if (project) *project = *p;
  return *c;
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

absl::StatusOr<std::vector<AuditEvent>> ControlPlane::ListAudit(const User& actor,
                                                                const std::string& project_id,
                                                                const AuditFilter& filter,
                                                                Page page) {
  // The organization's own events (project creation, tokens, grants) are filed under its id:
  // organization owners read them.
  if (project_id == actor.org_id && actor.org_role == "owner") {
    return metadata_.ListAudit(project_id, filter, page);
  }
  RETURN_IF_ERROR(Authorize(actor, project_id, Need::kView).status());
  return metadata_.ListAudit(project_id, filter, page);
}

}  // namespace keyward
