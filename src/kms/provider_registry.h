#pragma once
// The KMS provider registry. Every key management service keyward can keep master keys in
// (escrow, azure-key-vault, aws-kms, …) is one module under src/kms/<name>/ that registers a
// KmsProviderModule here. A module owns everything specific to its service:
//   - its name, display name and the cloud whose regions its keys live in;
//   - the schema of the `provider_config` object a key request carries, and its validation;
//   - the setup instructions customers follow (commands, templates, policies);
//   - the provider-specific checks of "Test Encryption Key and Create";
//   - a KmsProviderClient (the server's connection: credentials, endpoints) whose New() builds a
//     MasterKeyProvider from the key's own settings (KmsKeyRef), not the whole key record.
// The control plane, REST API and CLI look modules up by name and never name one; a new
// provider is a new module plus its line in the built-in list (provider_registry.cc).
//
// Thread safety: modules are registered at start-up (or in a test's set-up) and never removed
// (but by a test's tear-down);
// lookups may run concurrently with a Register (a mutex guards the list), and the pointers they
// return stay valid for the registry's lifetime. Modules are immutable and thread-safe.

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "kms/encryption_key.h"
#include "kms/key_ref.h"
#include "kms/master_key_provider.h"
#include "kms/serve_settings.h"
#include "kms/service_identity.h"

namespace keyward {

// One field of a provider's `provider_config`. Its CLI flag is the name with '-' for '_'
// (key_vault_name → --key-vault-name).
struct KmsConfigField {
  std::string name;
  std::string type = "string";  // JSON type of the value: "string" or "boolean"
  bool required = false;        // on create
  std::string description;
  // Fields sharing a group: exactly one of them on create (e.g. a vault or a Managed HSM).
  std::string one_of;
};

// What a key record stores of a validated provider_config.
struct KmsKeySettings {
  std::string key_name;
  nlohmann::json config;  // becomes EncryptionKey::config_json
};

// One check of "Test Encryption Key and Create".
struct KmsKeyCheck {
  std::string step;
  bool ok = false;
  std::string message;
};

// The server's connection to one provider (credentials, HTTP clients, endpoints), built once
// and shared by every key of that provider. Thread-safe.
class KmsProviderClient {
 public:
  virtual ~KmsProviderClient() = default;
  virtual absl::StatusOr<std::shared_ptr<MasterKeyProvider>> New(const KmsKeyRef& key) = 0;
};

class KmsProviderModule {
 public:
  virtual ~KmsProviderModule() = default;

  virtual std::string name() const = 0;          // "azure-key-vault"
  virtual std::string display_name() const = 0;  // "Azure Key Vault"
  // The cloud whose regions this provider's keys are for ("azure", "aws"): a CMEK project's
  // clusters on that cloud use its keys. "" when keys are not per region (escrow).
  virtual std::string cloud() const { return ""; }
  // False for the service's own key (escrow): customers cannot create keys of it.
  virtual bool customer_managed() const { return true; }
  // The older request field that still carries this provider's config ("azure", "aws"), an
  // alias of provider_config; "" for none.
  virtual std::string legacy_field() const { return ""; }
  virtual std::vector<KmsConfigField> config_fields() const { return {}; }

  // Settings of a new key in `region` (a known region of cloud(), checked before). `config` has
  // passed CheckKmsConfigFields. InvalidArgument naming the field as `prefix` + its name.
  virtual absl::StatusOr<KmsKeySettings> Validate(const std::string& region,
                                                  const nlohmann::json& config,
                                                  const std::string& prefix) const = 0;
  // Settings after `change` (only the fields it names) is applied to `current`. The default
  // replaces the named fields ("" removes an optional one) and validates the result, keeping
  // the stored key name when the new settings would only draw a new random one.
  virtual absl::StatusOr<KmsKeySettings> Change(const KmsKeyRef& current,
                                                const nlohmann::json& change,
                                                const std::string& prefix) const;

  // What the customer must do in their own account before testing the key.
  virtual nlohmann::json Instructions(const KmsKeyRef& key, const ServiceIdentity& id) const = 0;
  // What the customer sets up before any key record exists: the service's identity there
  // ("service_identity", placeholder flagged) and provider-specific steps (commands, policies).
  virtual nlohmann::json ServiceSetup(const ServiceIdentity& /*id*/) const {
    return nlohmann::json::object();
  }

  // Test Encryption Key and Create: the provider's checks of what Describe() said (enabled,
  // permitted operations, purge protection, region…), in the order shown.
  virtual std::vector<KmsKeyCheck> DescriptionChecks(const KmsKeyRef& key,
                                                     const KeyDescription& d) const = 0;
  // A hint appended to a failed Describe() (where in the setup the fix is); "" for none.
  virtual std::string DescribeHint(const KmsKeyRef& key, const absl::Status& st) const;
  // The service's names of the wrap and unwrap operations, for check messages.
  virtual std::string wrap_operation() const { return "wrap"; }
  virtual std::string unwrap_operation() const { return "unwrap"; }

  // Why a server without this provider's client cannot reach its keys, and what to start it with.
  virtual std::string NotConfiguredMessage() const;
  // A client for providers that need no server settings (nullptr: serve must configure one).
  virtual std::shared_ptr<KmsProviderClient> DefaultClient() const { return nullptr; }

  // `keyward serve`: the flags this provider owns, listed in --help under "<display name>
  // (<name>)" and serve_help_note() (how the server authenticates to the service).
  virtual std::vector<KmsServeFlag> serve_flags() const { return {}; }
  virtual std::string serve_help_note() const { return ""; }
  // Reads this provider's flags and environment into the server's settings and completes
  // keyward's identity for it in `identity`: from `stored` (service-identity.json; a module adds
  // the identity it generates on first start, and serve writes the file back), then the
  // identity flags, then the real identity the credentials name. nullptr: nothing configured.
  // InvalidArgument naming the flag for a bad or incomplete setting.
  virtual absl::StatusOr<std::shared_ptr<const KmsServeSettings>> LoadServeSettings(
      const KmsFlagValues& /*flags*/, nlohmann::json& /*stored*/,
      ServiceIdentity& /*identity*/) const {
    return std::shared_ptr<const KmsServeSettings>();
  }
};

// The longest string any provider_config field may hold.
inline constexpr size_t kMaxKmsConfigStringBytes = 2048;

// Checks `config` against the module's fields (strings at most kMaxKmsConfigStringBytes): an object
// of known fields of the right types, with the required ones (and one of each one_of group) when
// `creating`. InvalidArgument naming the field as `prefix` + name, e.g. "unknown field
// 'provider_config.extra'".
absl::Status CheckKmsConfigFields(const KmsProviderModule& module, const nlohmann::json& config,
                                  const std::string& prefix, bool creating);

// The module's schema for the REST API: name, display name, cloud, fields, legacy alias.
nlohmann::json KmsProviderJson(const KmsProviderModule& module);

class KmsProviderRegistry {
 public:
  KmsProviderRegistry() = default;
  KmsProviderRegistry(const KmsProviderRegistry&) = delete;
  KmsProviderRegistry& operator=(const KmsProviderRegistry&) = delete;

  // The process's registry, holding the built-in modules (escrow, azure-key-vault, aws-kms).
  static KmsProviderRegistry& Global();

  // AlreadyExists when a module of that name is registered.
  absl::Status Register(std::unique_ptr<KmsProviderModule> module);
  // Tests only: removes a module a test registered (nothing may still use it).
  void UnregisterForTest(std::string_view name);
  // nullptr when none has that name.
  const KmsProviderModule* Find(std::string_view name) const;
  // The customer-managed module `name`, else InvalidArgument listing the known ones.
  absl::StatusOr<const KmsProviderModule*> CustomerManaged(std::string_view name) const;
  // The customer-managed module for keys in `cloud`; nullptr for none.
  const KmsProviderModule* ForCloud(std::string_view cloud) const;
  // Every module, in registration order.
  std::vector<const KmsProviderModule*> Modules() const;
  // "azure-key-vault or aws-kms": the customer-managed names, for messages.
  std::string CustomerManagedNames() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<KmsProviderModule>> modules_ ABSL_GUARDED_BY(mu_);
};

}  // namespace keyward
