#include "client_assertion.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "util/base64.h"

namespace keyward::emulator {
namespace {

std::string Thumbprint(X509* cert, const EVP_MD* md) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, md, buf, &len);
  return Base64UrlEncode(std::string(reinterpret_cast<char*>(buf), len));
}

}  // namespace

absl::Status VerifyCertificateAssertion(const std::string& assertion,
                                        const std::string& certificate_pem,
                                        const std::string& client_id, const std::string& token_url,
                                        int64_t now) {
  std::vector<std::string> parts = absl::StrSplit(assertion, '.');
  if (parts.size() != 3) return absl::UnauthenticatedError("the client assertion is not a JWT");
  auto header_text = Base64Decode(parts[0]);
  auto claims_text = Base64Decode(parts[1]);
  auto signature = Base64Decode(parts[2]);
  if (!header_text.ok() || !claims_text.ok() || !signature.ok()) {
    return absl::UnauthenticatedError("the client assertion is not a JWT");
  }
  nlohmann::json header = nlohmann::json::parse(*header_text, nullptr, false);
  nlohmann::json claims = nlohmann::json::parse(*claims_text, nullptr, false);
  if (!header.is_object() || !claims.is_object())
    return absl::UnauthenticatedError("malformed assertion");

  BIO* bio = BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size()));
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio, nullptr, nullptr, nullptr), X509_free);
  BIO_free(bio);
  if (!cert) return absl::InternalError("registered certificate does not parse");
  bool thumb_ok =
      (header.contains("x5t#S256") && header["x5t#S256"] == Thumbprint(cert.get(), EVP_sha256())) ||
      (header.contains("x5t") && header["x5t"] == Thumbprint(cert.get(), EVP_sha1()));
  if (!thumb_ok) {
    return absl::UnauthenticatedError(
        "the certificate named by the assertion (x5t) is not registered for the application");
  }
  std::string alg = header.value("alg", "");
  if (alg != "RS256" && alg != "PS256")
    return absl::UnauthenticatedError("unsupported assertion algorithm " + alg);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pub(X509_get_pubkey(cert.get()),
                                                          EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  std::string input = parts[0] + "." + parts[1];
  bool ok = EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, pub.get()) == 1;
  if (ok && alg == "PS256") {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) == 1;
  }
  ok = ok &&
       EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                        signature->size(), reinterpret_cast<const unsigned char*>(input.data()),
                        input.size()) == 1;
  if (!ok) return absl::UnauthenticatedError("client assertion signature is invalid");
  if (claims.value("aud", "") != token_url) {
    return absl::UnauthenticatedError(absl::StrCat("assertion audience must be ", token_url));
  }
  if (claims.value("iss", "") != client_id || claims.value("sub", "") != client_id) {
    return absl::UnauthenticatedError("assertion iss and sub must be the client id");
  }
  if (claims.value("exp", int64_t{0}) <= now)
    return absl::UnauthenticatedError("client assertion expired");
  return absl::OkStatus();
}

}  // namespace keyward::emulator
