#pragma once
// Microsoft Entra ID access tokens for keyward's own identity, cached per scope until shortly
// before expiry, one request in flight per identity. Sources, as Azure's SDKs read them:
//   client secret      POST {authority}/{tenant}/oauth2/v2.0/token (client_credentials)
//   client certificate the same POST with a client_assertion JWT signed PS256 with the
//                      certificate's key, naming it by x5t#S256 (AZURE_CLIENT_CERTIFICATE_PATH,
//                      PEM)
//   workload identity  the same POST with client_assertion = contents of AZURE_FEDERATED_TOKEN_FILE
//   managed identity   GET {imds}?api-version=2018-02-01&resource=…  with header Metadata: true
// Tokens live only in memory and never reach a log or an error message.

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "cloud/http_client.h"

namespace keyward {

struct EntraIdentity {
  enum class Kind { kClientSecret, kClientCertificate, kWorkloadIdentity, kManagedIdentity };
  Kind kind = Kind::kClientSecret;
  std::string authority_host = "https://login.microsoftonline.com";
  std::string tenant_id;
  std::string client_id;
  std::string client_secret;         // kClientSecret
  std::string certificate_path;      // kClientCertificate: PEM with the certificate and its key
  std::string federated_token_file;  // kWorkloadIdentity
  std::string imds_url = "http://169.254.169.254/metadata/identity/oauth2/token";
};

class EntraTokenSource {
 public:
  EntraTokenSource(EntraIdentity identity, std::shared_ptr<HttpClient> http);
  // A bearer token for `resource` ("https://vault.azure.net"); `force_refresh` after a 401.
  absl::StatusOr<std::string> Token(const std::string& resource, bool force_refresh = false);
  const EntraIdentity& identity() const { return identity_; }

 private:
  absl::StatusOr<std::pair<std::string, int64_t>> Fetch(const std::string& resource);

  EntraIdentity identity_;
  std::shared_ptr<HttpClient> http_;
  std::mutex mu_;  // one fetch in flight per identity
  std::map<std::string, std::pair<std::string, int64_t>> cache_;  // resource → (token, expires_at)
};

// The JWT client assertion for a certificate credential (exposed for tests).
absl::StatusOr<std::string> CertificateAssertion(const std::string& pem_path,
                                                 const std::string& client_id,
                                                 const std::string& token_url);

}  // namespace keyward
