#include "kms/provider_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "kms/aws/aws_module.h"
#include "kms/azure/azure_module.h"
#include "kms/escrow/escrow_module.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

bool HasFieldType(const json& v, const std::string& type) {
  return type == "boolean" ? v.is_boolean() : v.is_string();
}

std::string FieldTypeName(const std::string& type) {
  return type == "boolean" ? "true or false" : "a string";
}

// "a", "a or b", "a, b or c".
std::string JoinWithOr(const std::vector<std::string>& names) {
  if (names.size() <= 1) return names.empty() ? "" : names[0];
  std::vector<std::string> head(names.begin(), names.end() - 1);
  return absl::StrCat(absl::StrJoin(head, ", "), " or ", names.back());
}

}  // namespace

absl::StatusOr<KmsKeySettings> KmsProviderModule::Change(const KmsKeyRef& current,
                                                         const json& change,
                                                         const std::string& prefix) const {
  std::vector<std::string> names;
  for (const KmsConfigField& f : config_fields()) names.push_back(prefix + f.name);
  if (!change.is_object() || change.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nothing to change: give one or more of ", absl::StrJoin(names, ", ")));
  }
  json merged = current.config;
  std::vector<KmsConfigField> fields = config_fields();
  for (const KmsConfigField& f : fields) {
    if (f.one_of.empty()) continue;
    std::vector<std::string> given;
    for (const KmsConfigField& g : fields) {
      if (g.one_of == f.one_of && change.contains(g.name)) given.push_back(prefix + g.name);
    }
    if (given.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("give exactly one of ", absl::StrJoin(given, " and ")));
    }
  }
  for (const auto& [field, value] : change.items()) {
    // Alternatives of one group replace each other: naming one drops the others.
    for (const KmsConfigField& f : fields) {
      if (f.name != field || f.one_of.empty()) continue;
      for (const KmsConfigField& other : fields) {
        if (other.one_of == f.one_of) merged.erase(other.name);
      }
    }
    bool optional = true;
    for (const KmsConfigField& f : fields) {
      if (f.name == field) optional = !f.required && f.one_of.empty();
    }
    if (optional && value.is_string() && value.get<std::string>().empty()) {
      merged.erase(field);  // "" removes an optional setting
    } else {
      merged[field] = value;
    }
  }
  RETURN_IF_ERROR(CheckKmsConfigFields(*this, merged, prefix, /*creating=*/true));
  return Validate(current.region, merged, prefix);
}

std::string KmsProviderModule::DescribeHint(const KmsKeyRef&, const absl::Status& st) const {
  if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) {
    return "; try the test again when the KMS is reachable";
  }
  return "";
}

std::string KmsProviderModule::NotConfiguredMessage() const {
  return absl::StrCat("this keyward server has no ", display_name(),
                      " client configured, so it cannot reach the key (see keyward serve "
                      "--help)");
}

absl::Status CheckKmsConfigFields(const KmsProviderModule& module, const json& config,
                                  const std::string& prefix, bool creating) {
  std::string where = prefix.empty() ? "provider_config" : prefix.substr(0, prefix.size() - 1);
  if (!config.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("field '", where, "' must be an object of ", module.name(), " settings"));
  }
  std::vector<KmsConfigField> fields = module.config_fields();
  for (const auto& [k, v] : config.items()) {
    const KmsConfigField* spec = nullptr;
    for (const KmsConfigField& f : fields) {
      if (f.name == k) spec = &f;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown field '", prefix, k, "'"));
    }
    if (!HasFieldType(v, spec->type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("field '", prefix, k, "' must be ", FieldTypeName(spec->type)));
    }
    // Every provider setting is a name, an ARN or an id: a bound here keeps module validation
    // (std::regex recurses per character in libstdc++) away from megabyte strings.
    if (v.is_string() && v.get_ref<const std::string&>().size() > kMaxKmsConfigStringBytes) {
      return absl::InvalidArgumentError(absl::StrCat("field '", prefix, k, "' is longer than ",
                                                     kMaxKmsConfigStringBytes, " bytes"));
    }
  }
  if (!creating) return absl::OkStatus();
  std::vector<std::string> groups;
  for (const KmsConfigField& f : fields) {
    if (f.required && !config.contains(f.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "field '", prefix, f.name, "' is required and must be ", FieldTypeName(f.type)));
    }
    if (!f.one_of.empty() && std::find(groups.begin(), groups.end(), f.one_of) == groups.end()) {
      groups.push_back(f.one_of);
    }
  }
  for (const std::string& group : groups) {
    std::vector<std::string> members;
    int given = 0;
    for (const KmsConfigField& f : fields) {
      if (f.one_of != group) continue;
      members.push_back(prefix + f.name);
      if (config.contains(f.name)) ++given;
    }
    if (given != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("give exactly one of ", absl::StrJoin(members, " and ")));
    }
  }
  return absl::OkStatus();
}

json KmsProviderJson(const KmsProviderModule& module) {
  json fields = json::array();
  for (const KmsConfigField& f : module.config_fields()) {
    json field = {{"name", f.name},
                  {"type", f.type},
                  {"required", f.required},
                  {"description", f.description},
                  {"cli_flag", absl::StrCat("--", absl::StrReplaceAll(f.name, {{"_", "-"}}))}};
    if (!f.one_of.empty()) field["one_of"] = f.one_of;
    fields.push_back(field);
  }
  json out = {{"name", module.name()},
              {"display_name", module.display_name()},
              {"cloud", module.cloud()},
              {"customer_managed", module.customer_managed()},
              {"config_fields", fields}};
  out["legacy_field"] = module.legacy_field().empty() ? json(nullptr) : json(module.legacy_field());
  return out;
}

KmsProviderRegistry& KmsProviderRegistry::Global() {
  // Built once, never destroyed: modules outlive every server and test using them.
  static KmsProviderRegistry* registry = [] {
    auto* r = new KmsProviderRegistry();
    // The built-in providers, in the order they are listed to customers.
    for (auto* make : {NewEscrowModule, NewAzureKeyVaultModule, NewAwsKmsModule}) {
      absl::Status st = r->Register(make());
      (void)st;  // distinct names: cannot fail
    }
    return r;
  }();
  return *registry;
}

absl::Status KmsProviderRegistry::Register(std::unique_ptr<KmsProviderModule> module) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& m : modules_) {
    if (m->name() == module->name()) {
      return absl::AlreadyExistsError(
          absl::StrCat("a KMS provider named ", module->name(), " is already registered"));
    }
  }
  modules_.push_back(std::move(module));
  return absl::OkStatus();
}

void KmsProviderRegistry::UnregisterForTest(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(modules_, [&](const auto& m) { return m->name() == name; });
}

const KmsProviderModule* KmsProviderRegistry::Find(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& m : modules_) {
    if (m->name() == name) return m.get();
  }
  return nullptr;
}

absl::StatusOr<const KmsProviderModule*> KmsProviderRegistry::CustomerManaged(
    std::string_view name) const {
  const KmsProviderModule* m = Find(name);
  if (m != nullptr && m->customer_managed()) return m;
  return absl::InvalidArgumentError(
      absl::StrCat("provider must be ", CustomerManagedNames(),
                   " (the key management services CMEK supports), not '", std::string(name), "'"));
}

const KmsProviderModule* KmsProviderRegistry::ForCloud(std::string_view cloud) const {
  if (cloud.empty()) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& m : modules_) {
    if (m->customer_managed() && m->cloud() == cloud) return m.get();
  }
  return nullptr;
}

std::vector<const KmsProviderModule*> KmsProviderRegistry::Modules() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const KmsProviderModule*> out;
  for (const auto& m : modules_) out.push_back(m.get());
  return out;
}

std::string KmsProviderRegistry::CustomerManagedNames() const {
  std::vector<std::string> names;
  for (const KmsProviderModule* m : Modules()) {
    if (m->customer_managed()) names.push_back(m->name());
  }
  return JoinWithOr(names);
}

}  // namespace keyward
