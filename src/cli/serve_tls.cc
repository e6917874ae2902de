#include "cli/serve_tls.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "api/rest_server.h"
#include "crypto/tls_certificates.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {

std::vector<std::string> ResolveHost(const std::string& host) {
  std::vector<std::string> out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (host.empty() || getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* a = res; a; a = a->ai_next) {
    char text[NI_MAXHOST];
    if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) ==
        0) {
      out.emplace_back(text);
    }
  }
  freeaddrinfo(res);
  return out;
}

bool IsWildcardHost(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host == "[::]" || host.empty();
}

bool IsLoopbackHost(const std::string& host, const HostResolver& resolve) {
  if (IsLoopbackAddress(host)) return true;
  if (IsWildcardHost(host)) return false;
  // A name: loopback only if every address it resolves to is (a "localhost" that /etc/hosts or
  // DNS points elsewhere is exposed like that address).
  std::vector<std::string> addresses = resolve(host);
  return !addresses.empty() &&
         std::all_of(addresses.begin(), addresses.end(),
                     [](const std::string& a) { return IsLoopbackAddress(a); });
}

namespace {

// --cluster-tls-cert/--cluster-tls-key, else the API's files.
absl::Status ChooseClusterTls(const ParsedFlags& flags, ListenerSecurity* out) {
  bool cert = flags.Has("cluster-tls-cert"), key = flags.Has("cluster-tls-key");
  if (cert != key) {
    return absl::InvalidArgumentError("--cluster-tls-cert and --cluster-tls-key go together");
  }
  if (cert) {
    out->cluster_cert = *flags.Get("cluster-tls-cert");
    out->cluster_key = *flags.Get("cluster-tls-key");
    return CheckServerTlsFiles(out->cluster_cert, out->cluster_key);
  }
  out->cluster_cert = out->api_cert;
  out->cluster_key = out->api_key;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ListenerSecurity> ChooseListenerSecurity(const ParsedFlags& flags,
                                                        const std::string& data_dir,
                                                        const std::string& api_host,
                                                        const HostResolver& resolve) {
  ListenerSecurity out;
  std::string cluster_host = flags.Get("cluster-host").value_or("127.0.0.1");
  out.advertise_host = flags.Get("advertise-host").value_or("");
  if (out.advertise_host.empty() && IsWildcardHost(cluster_host)) {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
      return absl::InvalidArgumentError(
          "--cluster-host binds every address: give --advertise-host, the name clients reach "
          "this machine by");
    }
    out.advertise_host = name;
  }
  bool cert = flags.Has("tls-cert"), key = flags.Has("tls-key");
  if (cert != key) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (cert && flags.Has("tls-self-signed")) {
    return absl::InvalidArgumentError("choose --tls-cert/--tls-key or --tls-self-signed, not both");
  }
  if (cert) {
    out.api_cert = *flags.Get("tls-cert");
    out.api_key = *flags.Get("tls-key");
    RETURN_IF_ERROR(CheckServerTlsFiles(out.api_cert, out.api_key));
  } else if (flags.Has("tls-self-signed")) {
    // One certificate for both listeners: every name clients may use for either.
    std::vector<std::string> hosts = {"127.0.0.1", "localhost", "::1"};
    for (const std::string& h : {api_host, cluster_host, out.advertise_host}) {
      if (!h.empty() && !IsWildcardHost(h) &&
          std::find(hosts.begin(), hosts.end(), h) == hosts.end())
        hosts.push_back(h);
    }
    ASSIGN_OR_RETURN(TlsFiles files, EnsureSelfSignedTls(data_dir + "/tls", hosts));
    out.api_cert = files.cert;
    out.api_key = files.key;
    out.api_ca = files.ca_cert;
  }
  RETURN_IF_ERROR(ChooseClusterTls(flags, &out));
  bool insecure = flags.Has("insecure-plaintext");
  bool api_exposed = !IsLoopbackHost(api_host, resolve) && out.api_cert.empty();
  bool cluster_exposed = !IsLoopbackHost(cluster_host, resolve) && out.cluster_cert.empty();
  if (api_exposed && !insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen ", api_host,
        " is reachable from other machines and the API would carry bearer tokens in cleartext: "
        "give --tls-cert/--tls-key or --tls-self-signed, or --insecure-plaintext to accept it"));
  }
  if (cluster_exposed && !insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cluster-host ", cluster_host,
        " is reachable from other machines and cluster connections (AUTH passwords, data) would "
        "cross the network in cleartext: give --cluster-tls-cert/--cluster-tls-key, "
        "--tls-cert/--tls-key or --tls-self-signed, or --insecure-plaintext to accept it"));
  }
  if (insecure && (api_exposed || cluster_exposed)) {
    LogWarn("server.insecure_plaintext",
            "WARNING: --insecure-plaintext: tokens, passwords and data cross the network in "
            "cleartext");
  }
  return out;
}

}  // namespace keyward
