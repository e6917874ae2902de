#include "crypto/tls_certificates.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/secret_file.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Bio = std::unique_ptr<BIO, Free>;

constexpr long kDay = 24L * 3600;

absl::Status OpenSslError(const std::string& what) {
  return absl::InternalError(absl::StrCat("cannot ", what, " (OpenSSL)"));
}

bool IsIpAddress(const std::string& host) {
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  if (ip == nullptr) return false;
  ASN1_OCTET_STRING_free(ip);
  return true;
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("generate a P-256 key");
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("add certificate extension ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

// A certificate for `subject_key` named `common_name`, signed by `issuer_key` (issuer nullptr:
// self-signed).
absl::StatusOr<Cert> Issue(EVP_PKEY* subject_key, const std::string& common_name, X509* issuer,
                           EVP_PKEY* issuer_key, long days, bool ca,
                           const std::vector<std::string>& hosts, bool peer_auth = false) {
  Cert cert(X509_new());
  if (!cert) return OpenSslError("create a certificate");
  X509_set_version(cert.get(), 2);
  // 159 random bits: serial numbers must be positive and unique per issuer.
  BIGNUM* serial = BN_new();
  bool ok = serial != nullptr && BN_rand(serial, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(serial);
  if (!ok) return OpenSslError("pick a certificate serial number");
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // clocks a little behind still accept
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * kDay);
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("keyward"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash"));
  if (issuer != nullptr) {
    RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid"));
  }
  if (ca) {
    RETURN_IF_ERROR(
        AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    RETURN_IF_ERROR(
        AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE"));
    RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature"));
    RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_ext_key_usage,
                                 peer_auth ? "serverAuth,clientAuth" : "serverAuth"));
    std::vector<std::string> san;
    for (const auto& h : hosts) san.push_back(absl::StrCat(IsIpAddress(h) ? "IP:" : "DNS:", h));
    RETURN_IF_ERROR(
        AddExtension(cert.get(), signer, NID_subject_alt_name, absl::StrJoin(san, ",")));
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0)
    return OpenSslError("sign a certificate");
  return cert;
}

absl::StatusOr<std::string> PemOf(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("write a certificate");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// PEM of a private key; the memory BIO's buffer is cleared before it is freed.
absl::StatusOr<std::string> PemOf(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_secmem()));
  if (!bio) bio.reset(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("write a private key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<Cert> ReadCert(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileToString(path, 1 << 20));
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a PEM certificate"));
  }
  return cert;
}

absl::StatusOr<Key> ReadKey(const std::string& path) {
  ASSIGN_OR_RETURN(SecretBytes pem, ReadSecretFile(path, 1 << 20));
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     " is not a PEM private key (or it is encrypted; give it unencrypted, "
                     "mode 0600)"));
  }
  return key;
}

// The server certificate covers every host and stays valid for 30 more days.
bool StillGood(X509* cert, const std::vector<std::string>& hosts, bool peer_auth) {
  if (X509_cmp_time(X509_get0_notAfter(cert), nullptr) <= 0) return false;
  if (peer_auth && X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0) != 1) return false;
  ASN1_TIME* soon = X509_time_adj_ex(nullptr, 30, 0, nullptr);
  bool fresh = soon != nullptr && ASN1_TIME_compare(X509_get0_notAfter(cert), soon) > 0;
  ASN1_TIME_free(soon);
  if (!fresh) return false;
  for (const auto& h : hosts) {
    int ok = IsIpAddress(h) ? X509_check_ip_asc(cert, h.c_str(), 0)
                            : X509_check_host(cert, h.c_str(), h.size(), 0, nullptr);
    if (ok != 1) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<TlsFiles> EnsureSelfSignedTls(const std::string& dir,
                                             const std::vector<std::string>& hosts,
                                             bool peer_auth) {
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  TlsFiles files{dir + "/ca.pem", dir + "/server.pem", dir + "/server.key"};
  std::string ca_key_path = dir + "/ca.key";
  Key ca_key;
  Cert ca_cert;
  if (access(files.ca_cert.c_str(), F_OK) == 0 && access(ca_key_path.c_str(), F_OK) == 0) {
    ASSIGN_OR_RETURN(ca_cert, ReadCert(files.ca_cert));
    ASSIGN_OR_RETURN(ca_key, ReadKey(ca_key_path));
    if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          ca_key_path, " does not belong to ", files.ca_cert, "; remove the directory ", dir,
          " to make a new CA (clients must then trust the new ca.pem)"));
    }
  } else {
    ASSIGN_OR_RETURN(ca_key, NewKey());
    ASSIGN_OR_RETURN(
        ca_cert, Issue(ca_key.get(), "keyward local CA", nullptr, ca_key.get(), 3650, true, {}));
    ASSIGN_OR_RETURN(std::string key_pem, PemOf(ca_key.get()));
    absl::Status st = WriteFileAtomically(ca_key_path, key_pem, 0600);
    std::fill(key_pem.begin(), key_pem.end(), '\0');
    RETURN_IF_ERROR(st);
    ASSIGN_OR_RETURN(std::string ca_pem, PemOf(ca_cert.get()));
    RETURN_IF_ERROR(WriteFileAtomically(files.ca_cert, ca_pem, 0600));  // the data dir is private
    unlink(files.cert.c_str());  // issued by another CA, if any
  }
  if (access(files.cert.c_str(), F_OK) == 0 && access(files.key.c_str(), F_OK) == 0) {
    auto cert = ReadCert(files.cert);
    if (cert.ok() && X509_verify(cert->get(), ca_key.get()) == 1 &&
        StillGood(cert->get(), hosts, peer_auth)) {
      return files;
    }
  }
  ASSIGN_OR_RETURN(Key key, NewKey());
  std::string cn = hosts.empty() ? "localhost" : hosts[0];
  ASSIGN_OR_RETURN(Cert cert,
                   Issue(key.get(), cn, ca_cert.get(), ca_key.get(), 365, false, hosts, peer_auth));
  ASSIGN_OR_RETURN(std::string key_pem, PemOf(key.get()));
  absl::Status st = WriteFileAtomically(files.key, key_pem, 0600);
  std::fill(key_pem.begin(), key_pem.end(), '\0');
  RETURN_IF_ERROR(st);
  ASSIGN_OR_RETURN(std::string cert_pem, PemOf(cert.get()));
  RETURN_IF_ERROR(WriteFileAtomically(files.cert, cert_pem, 0600));
  return files;
}

absl::Status CheckServerTlsFiles(const std::string& cert_file, const std::string& key_file) {
  // Group-readable is common (/etc/ssl/private, group ssl-cert); readable by everyone is not.
  struct stat st {};
  if (stat(key_file.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        key_file, " (the TLS private key) is readable by every user: chmod o-r (0600 or 0640)"));
  }
  ASSIGN_OR_RETURN(Cert cert, ReadCert(cert_file));
  ASSIGN_OR_RETURN(Key key, ReadKey(key_file));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_file, " is not the private key of the certificate in ", cert_file));
  }
  if (X509_cmp_time(X509_get0_notAfter(cert.get()), nullptr) <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the certificate in ", cert_file, " has expired"));
  }
  if (X509_cmp_time(X509_get0_notBefore(cert.get()), nullptr) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the certificate in ", cert_file, " is not valid yet (check the clock)"));
  }
  return absl::OkStatus();
}

}  // namespace keyward
