#pragma once
// `keyward serve`'s listener security: TLS for the REST API and for the cluster (Redis)
// endpoints, and the refusal to expose a cleartext listener to other machines.
//
// TLS files. The API: --tls-cert/--tls-key, or --tls-self-signed (a private CA and a server
// certificate under DATA/tls/, crypto/tls_certificates.h). Cluster endpoints: their own
// --cluster-tls-cert/--cluster-tls-key, else the API's certificate, so one --tls-self-signed (or
// one --tls-cert/--tls-key pair) puts both listeners under TLS; a server with no TLS at all keeps
// plaintext endpoints on loopback. The self-signed certificate covers the --listen host, the
// --cluster-host and the --advertise-host.
//
// Exposure. A listener is "loopback" only when its host is an address in 127.0.0.0/8 or ::1, or a
// name every address of which resolves into those ("localhost" as /etc/hosts has it): a name is
// never trusted for what it says. Anything else without TLS needs --insecure-plaintext (warned).

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/flags.h"

namespace keyward {

struct ListenerSecurity {
  std::string api_cert, api_key;          // empty: plain HTTP
  std::string api_ca;                     // the private CA clients trust (--tls-self-signed)
  std::string cluster_cert, cluster_key;  // empty: plaintext Redis endpoints
  std::string advertise_host;             // empty: the cluster host
};

// Every address `host` names (numeric or resolved); empty when it does not resolve.
using HostResolver = std::function<std::vector<std::string>(const std::string& host)>;
std::vector<std::string> ResolveHost(const std::string& host);

bool IsWildcardHost(const std::string& host);
// A literal loopback address, or a name that resolves to loopback addresses only.
bool IsLoopbackHost(const std::string& host, const HostResolver& resolve = ResolveHost);

absl::StatusOr<ListenerSecurity> ChooseListenerSecurity(const ParsedFlags& flags,
                                                        const std::string& data_dir,
                                                        const std::string& api_host,
                                                        const HostResolver& resolve = ResolveHost);

}  // namespace keyward
