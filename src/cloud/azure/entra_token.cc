#include "cloud/azure/entra_token.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"
#include "kms/azure/azure_replies.h"
#include "util/base64.h"
#include "crypto/secret_file.h"
#include "util/file_util.h"

namespace keyward {
namespace {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::string> CertificateAssertion(const std::string& pem_path,
                                                 const std::string& client_id,
                                                 const std::string& token_url) {
  auto pem = ReadSecretFile(pem_path, 1 << 20);
  if (!pem.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the client certificate (AZURE_CLIENT_CERTIFICATE_PATH) ",
                     pem_path, ": ", pem.status().message()));
  }
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio, nullptr, nullptr, nullptr), X509_free);
  BIO_reset(bio);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr), EVP_PKEY_free);
  BIO_free(bio);
  if (!cert || !key) {
    return absl::FailedPreconditionError(
        absl::StrCat(pem_path, " must hold a PEM certificate and its unencrypted private key"));
  }
  unsigned char thumb[EVP_MAX_MD_SIZE];
  unsigned int thumb_len = 0;
  X509_digest(cert.get(), EVP_sha256(), thumb, &thumb_len);
  nlohmann::json header = {
      {"alg", "PS256"},
      {"typ", "JWT"},
      {"x5t#S256", Base64UrlEncode(std::string(reinterpret_cast<char*>(thumb), thumb_len))}};
  int64_t now = NowSeconds();
  auto jti = RandomHex(16);
  if (!jti.ok()) return jti.status();
  nlohmann::json claims = {{"aud", token_url}, {"iss", client_id}, {"sub", client_id},
                           {"jti", *jti},      {"nbf", now},       {"iat", now},
                           {"exp", now + 600}};
  std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  size_t sig_len = 0;
  bool ok = EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
            EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  std::string sig(sig_len, '\0');
  ok =
      ok && EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (!ok)
    return absl::InternalError(
        "cannot sign the client assertion (the certificate key must be RSA)");
  sig.resize(sig_len);
  return input + "." + Base64UrlEncode(sig);
}

EntraTokenSource::EntraTokenSource(EntraIdentity identity, std::shared_ptr<HttpClient> http)
    : identity_(std::move(identity)), http_(std::move(http)) {}

absl::StatusOr<std::string> EntraTokenSource::Token(const std::string& resource,
                                                    bool force_refresh) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(resource);
  if (!force_refresh && it != cache_.end() && it->second.second - 300 > NowSeconds())
    return it->second.first;
  auto fetched = Fetch(resource);
  if (!fetched.ok()) return fetched.status();
  cache_[resource] = *fetched;
  return fetched->first;
}

absl::StatusOr<std::pair<std::string, int64_t>> EntraTokenSource::Fetch(
    const std::string& resource) {
  HttpRequest req;
  std::string who;
  if (identity_.kind == EntraIdentity::Kind::kManagedIdentity) {
    req.method = "GET";
    req.url = absl::StrCat(identity_.imds_url, "?api-version=2018-02-01&resource=", resource);
    if (!identity_.client_id.empty()) absl::StrAppend(&req.url, "&client_id=", identity_.client_id);
    req.headers = {"Metadata: true"};
    who = "managed identity";
  } else {
    std::map<std::string, std::string> form = {{"grant_type", "client_credentials"},
                                               {"client_id", identity_.client_id},
                                               {"scope", resource + "/.default"}};
    if (identity_.kind == EntraIdentity::Kind::kClientSecret) {
      form["client_secret"] = identity_.client_secret;
    } else if (identity_.kind == EntraIdentity::Kind::kClientCertificate) {
      std::string token_url =
          absl::StrCat(identity_.authority_host, "/", identity_.tenant_id, "/oauth2/v2.0/token");
      auto assertion =
          CertificateAssertion(identity_.certificate_path, identity_.client_id, token_url);
      if (!assertion.ok()) return assertion.status();
      form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
      form["client_assertion"] = *assertion;
    } else {
      auto assertion = ReadFileToString(identity_.federated_token_file, 1 << 16);
      if (!assertion.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot read the federated token file (AZURE_FEDERATED_TOKEN_FILE): ",
                         assertion.status().message()));
      }
      form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
      form["client_assertion"] = *assertion;
    }
    req.method = "POST";
    req.url =
        absl::StrCat(identity_.authority_host, "/", identity_.tenant_id, "/oauth2/v2.0/token");
    req.headers = {"Content-Type: application/x-www-form-urlencoded"};
    req.body = FormEncode(form);
    who = absl::StrCat("application ", identity_.client_id, " in tenant ", identity_.tenant_id);
  }
  auto res = http_->Send(req);
  WipeString(req.body);  // a client secret or assertion
  if (!res.ok())
    return absl::UnavailableError(
        absl::StrCat("Entra ID token for ", who, ": ", res.status().message()));
  const char* service = identity_.kind == EntraIdentity::Kind::kManagedIdentity
                            ? "the managed identity endpoint (IMDS)"
                            : "Entra ID";
  if (res->status != 200) {
    // An unreadable error body still carries its HTTP status: map by that alone.
    EntraErrorReply err = ParseEntraError(res->body).value_or(EntraErrorReply{});
    std::string why = err.error_description.empty() ? err.error : err.error_description;
    absl::StatusCode code = res->status == 400 || res->status == 401
                                ? absl::StatusCode::kUnauthenticated
                                : absl::StatusCode::kUnavailable;
    return absl::Status(code, absl::StrCat("Entra ID refused a token for ", who, " (HTTP ",
                                           res->status, "): ", ExcerptForMessage(why, 300)));
  }
  auto reply = ParseTokenReply(res->body);
  WipeString(res->body);
  if (!reply.ok()) {
    return absl::UnavailableError(absl::StrCat(
        service, " answered a token request for ", who, " with a reply keyward cannot read (",
        reply.status().message(), "); treating it as a transient failure"));
  }
  int64_t expires_at = reply->expires_on ? *reply->expires_on : NowSeconds() + reply->expires_in;
  return std::make_pair(std::move(reply->access_token), expires_at);
}

}  // namespace keyward
