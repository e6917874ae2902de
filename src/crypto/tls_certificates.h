#pragma once
// Certificates for keyward's TLS listeners (REST API and cluster endpoints).
//
// `--tls-self-signed` is the quick start: a private CA and a server certificate signed by it,
// made once under DATA/tls/ and reused (the server certificate is issued again from the same CA
// when the host names it must cover change or it is within 30 days of expiry). Clients trust
// DATA/tls/ca.pem (`keyward --cacert`, `redis-cli --tls --cacert`, `curl --cacert`). Keys are
// ECDSA P-256, written 0600; certificates are SHA-256 signed, the CA valid 10 years, the server
// certificate 1 year, with subjectAltName entries for every host (IP or DNS) given.
//
// For certificates the operator brings (--tls-cert/--tls-key), CheckServerTlsFiles says at start
// what is wrong (unreadable, not PEM, key not matching the certificate, expired) instead of a
// handshake failure later.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

struct TlsFiles {
  std::string ca_cert;  // empty for operator-provided files
  std::string cert;     // server certificate chain (PEM)
  std::string key;      // its private key (PEM, 0600)
};

// Creates or reuses DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key (all 0600: the data dir
// is private; copy ca.pem to clients) covering `hosts`
// ("127.0.0.1", "localhost", "db.example.com", "::1"...). `peer_auth`: the certificate also
// serves as a TLS client certificate (extendedKeyUsage clientAuth too), for peers that connect
// to each other with one certificate (MariaDB Galera nodes, mariabackup SST).
absl::StatusOr<TlsFiles> EnsureSelfSignedTls(const std::string& dir,
                                             const std::vector<std::string>& hosts,
                                             bool peer_auth = false);

// The certificate parses, the key parses and matches it, and it is valid now. Errors name the
// file and the problem, never key bytes.
absl::Status CheckServerTlsFiles(const std::string& cert_file, const std::string& key_file);

}  // namespace keyward
