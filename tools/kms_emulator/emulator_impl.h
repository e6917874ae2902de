#pragma once
// The emulator's implementation class, shared by its handler files (emulator.cc: Entra ID,
// tokens, RBAC, faults; keyvault_handlers.cc; arm_admin_handlers.cc). Thread-safe: state is
// guarded by mu_.

#include <httplib.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "emulator.h"

namespace keyward::emulator {

using nlohmann::json;
namespace aws {
struct Caller;
}

inline constexpr char kCryptoOfficer[] = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
inline constexpr char kCryptoServiceEncryptionUser[] = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
inline constexpr char kVaultAudience[] = "https://vault.azure.net";
inline constexpr char kHsmAudience[] = "https://managedhsm.azure.net";
inline constexpr char kHsmCryptoUser[] = "21dbd100-6940-42c2-9190-5d6cb909625b";
inline constexpr char kHsmCryptoServiceEncryptionUser[] = "33413926-3206-4cdd-b39a-83574fe37a17";
inline constexpr char kArmAudience[] = "https://management.azure.com";

int64_t Now();
std::string Lower(std::string s);
std::string Uuid();
void KvError(httplib::Response& res, int status, const std::string& code,
             const std::string& message, const std::string& inner = "");
bool RoleAllows(const std::string& role_id, const std::string& action);

class EmulatorImpl : public Emulator {
 public:
  explicit EmulatorImpl(EmulatorOptions o) : options_(std::move(o)) {}

  absl::Status Init();

  int port() const override { return port_; }
  std::string ReadyLine() const override {
    std::string p = std::to_string(port_);
    return json{{"ready", true},
                {"port", port_},
                {"tenant_id", state_["tenant_id"]},
                {"ca_file", options_.state_dir + "/ca.pem"},
                {"vault_url_template", "https://{name}.vault.azure.net:" + p},
                {"managed_hsm_url_template", "https://{name}.managedhsm.azure.net:" + p},
                {"authority_host", "https://login.microsoftonline.com:" + p},
                {"management_host", "https://management.azure.com:" + p},
                {"imds_url", "https://127.0.0.1:" + p + "/metadata/identity/oauth2/token"},
                {"admin_url", "https://127.0.0.1:" + p + "/admin"},
                {"connect_to", "127.0.0.1:" + p},
                {"aws_endpoint", "https://127.0.0.1:" + p}}
        .dump();
  }
  void Serve() override { server_->listen_after_bind(); }
  void Stop() override { server_->stop(); }

  // Public to the handler files of this emulator, not to its users.
  // ---- state ----
  void Save();
  std::string Tenant() const { return state_["tenant_id"]; }
  std::string Secret() const { return state_["jwt_secret"]; }

  // ---- faults and counters ----
  // Returns true when a fault answered the request.
  bool Fault(const std::string& op, httplib::Response& res);
  static std::string GarbageBody(const std::string& op, const std::string& variant,
                                 const json& fault);

  // ---- Entra ID ----
  std::string IssueToken(const json& principal, const std::string& audience);

  void EntraError(httplib::Response& res, int status, const std::string& error,
                  const std::string& aadsts, const std::string& text);

  void Token(const httplib::Request& req, httplib::Response& res, const std::string& tenant);

  void Imds(const httplib::Request& req, httplib::Response& res);

  // Verifies the bearer token for `audience`; answers 401 (with the Key Vault challenge) if not.
  std::optional<json> Authenticate(const httplib::Request& req, httplib::Response& res,
                                   const std::string& audience);

  // ---- RBAC ----
  static bool ScopeCovers(const std::string& assignment, const std::string& resource);

  bool Allowed(const std::string& object_id, const std::string& scope, const std::string& action);

  std::string VaultScope(const std::string& vault);

  // keyvault_handlers.cc
  void Routes();
  // `vault` is a vault name, or "hsm:" + a Managed HSM name.
  void KeyVault(const httplib::Request& req, httplib::Response& res, const std::string& vault);
  // Managed HSM local RBAC: PUT
  // {hsm}/{scope}/providers/Microsoft.Authorization/roleAssignments/{id}
  void HsmRoleAssignment(const httplib::Request& req, httplib::Response& res,
                         const std::string& hsm);
  // arm_admin_handlers.cc
  void Arm(const httplib::Request& req, httplib::Response& res);
  void Admin(const httplib::Request& req, httplib::Response& res);
  // aws_kms_handlers.cc: AWS KMS (requests carrying X-Amz-Target) and its admin routes
  // (/admin/aws/..., called with mu_ held).
  void AwsKms(const httplib::Request& req, httplib::Response& res);
  void AwsAdmin(const httplib::Request& req, httplib::Response& res, const json& body);
  // SigV4: the caller, or nullopt with the error AWS gives already in `res`. mu_ held.
  std::optional<aws::Caller> AwsAuthenticate(const httplib::Request& req, httplib::Response& res,
                                             const std::string& service = "kms");
  // aws_sts_handlers.cc: STS GetCallerIdentity and AssumeRoleWithWebIdentity (form POSTs to /).
  void AwsSts(const httplib::Request& req, httplib::Response& res);

  EmulatorOptions options_;
  std::unique_ptr<httplib::SSLServer> server_;
  int port_ = 0;
  std::mutex mu_;
  json state_;
  json faults_ = json::array();
  json counters_ = json::object();
};

}  // namespace keyward::emulator
