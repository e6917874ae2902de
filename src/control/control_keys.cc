// Encryption keys: the setup instructions and KMS providers a key is created with, creating,
// listing and testing key records (describe, the provider's checks, wrap, unwrap).
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "control/key_settings.h"
#include "control/regions.h"
#include "crypto/random.h"
#include "util/status_macros.h"

namespace keyward {

using control_internal::NewId;
using nlohmann::json;

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
  // True when what failed is this server's own KMS configuration (no credentials…): the
  // customer's key is not at fault, so it keeps its state too, and the answer says so.
  bool server_setup = false;
  auto server_fault = [&](const absl::Status& st) {
    if (!IsKmsServerSetupError(st)) return false;
    server_setup = true;
    reached = false;
    return true;
  };
  auto provider = kms_.ProviderFor(key);
  std::optional<KeyDescription> desc;
  if (!check("connect", provider.ok(),
             provider.ok() ? "provider configured" : std::string(provider.status().message()))) {
    reached = false;
    server_setup = true;  // this server has no client for the key's provider
  } else if (auto d = (*provider)->Describe(); !d.ok()) {
    if (!server_fault(d.status())) {
      reached = !absl::IsUnavailable(d.status()) && !absl::IsDeadlineExceeded(d.status());
    }
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
    if (!wrapped.ok()) server_fault(wrapped.status());
    if (check("wrap", wrapped.ok(),
              wrapped.ok() ? absl::StrCat(wrap_op, " succeeded")
                           : std::string(wrapped.status().message()))) {
      auto unwrapped = (*provider)->Unwrap(*wrapped, context);
      if (!unwrapped.ok()) server_fault(unwrapped.status());
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
    absl::StrAppend(&message,
                    server_setup ? "; that is this keyward server's own configuration, not the "
                                   "key's, so the key stays "
                                 : "; the test could not reach the KMS, so the key stays ",
                    state, ": fix that, then test again: keyward key test --project ",
                    key.project_id, " ", key.id);
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

}  // namespace keyward
