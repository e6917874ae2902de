#pragma once
// Verifies the client assertions Entra ID accepts in a client_credentials request:
//  - a certificate credential: a JWT signed (RS256 or PS256) with the application's registered
//    certificate, naming it by x5t#S256 (or x5t), aud = the token endpoint, iss = sub = client id;
//  - a federated credential (workload identity): a JWT from the emulator's own issuer standing
//    in for a Kubernetes service-account token issuer, aud = api://AzureADTokenExchange, sub =
//    the subject registered for the application.

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"

namespace keyward::emulator {

absl::Status VerifyCertificateAssertion(const std::string& assertion,
                                        const std::string& certificate_pem,
                                        const std::string& client_id, const std::string& token_url,
                                        int64_t now);

}  // namespace keyward::emulator
