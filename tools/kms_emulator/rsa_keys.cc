#include "rsa_keys.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>

#include "util/base64.h"
#include "util/bytes.h"

namespace keyward::emulator {
namespace {

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Key Load(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return Key(k, EVP_PKEY_free);
}

std::string Bn(const EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return "";
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

}  // namespace

absl::StatusOr<std::string> GenerateRsaPem(int bits) {
  Key key(EVP_RSA_gen(static_cast<unsigned>(bits)), EVP_PKEY_free);
  if (!key) return absl::InternalError("RSA key generation failed");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

absl::Status RsaPublicJwk(const std::string& pem, std::string* n, std::string* e) {
  Key key = Load(pem);
  if (!key) return absl::InternalError("stored key does not load");
  *n = Base64UrlEncode(Bn(key.get(), OSSL_PKEY_PARAM_RSA_N));
  *e = Base64UrlEncode(Bn(key.get(), OSSL_PKEY_PARAM_RSA_E));
  return absl::OkStatus();
}

absl::StatusOr<std::string> RsaOaep(const std::string& pem, const std::string& alg,
                                    const std::string& data, bool encrypt) {
  Key key = Load(pem);
  if (!key) return absl::InternalError("stored key does not load");
  const EVP_MD* md = alg == "RSA-OAEP-256" ? EVP_sha256() : EVP_sha1();
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new(key.get(), nullptr), EVP_PKEY_CTX_free);
  int init = encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get());
  if (init != 1 || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) != 1) {
    return absl::InternalError("RSA-OAEP setup failed");
  }
  size_t out_len = 0;
  auto in = reinterpret_cast<const unsigned char*>(data.data());
  int rc = encrypt ? EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len, in, data.size())
                   : EVP_PKEY_decrypt(ctx.get(), nullptr, &out_len, in, data.size());
  if (rc != 1) return absl::InvalidArgumentError("RSA-OAEP failed");
  std::string out(out_len, '\0');
  auto o = reinterpret_cast<unsigned char*>(out.data());
  rc = encrypt ? EVP_PKEY_encrypt(ctx.get(), o, &out_len, in, data.size())
               : EVP_PKEY_decrypt(ctx.get(), o, &out_len, in, data.size());
  if (rc != 1) return absl::InvalidArgumentError("the ciphertext does not decrypt with this key");
  out.resize(out_len);
  return out;
}

absl::StatusOr<std::string> AesKeyWrap(const std::string& key_hex, const std::string& data,
                                       bool wrap) {
  auto key = HexDecode(key_hex);
  if (!key.ok() || key->size() != 32) return absl::InternalError("stored oct key is malformed");
  if (data.size() % 8 != 0 || data.size() < (wrap ? 16u : 24u)) {
    return absl::InvalidArgumentError("A256KW input must be a multiple of 8 bytes");
  }
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  auto k = reinterpret_cast<const unsigned char*>(key->data());
  int ok = wrap ? EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_wrap(), nullptr, k, nullptr)
                : EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_wrap(), nullptr, k, nullptr);
  std::string out(data.size() + 8, '\0');
  int len = 0, fin = 0;
  auto o = reinterpret_cast<unsigned char*>(out.data());
  auto in = reinterpret_cast<const unsigned char*>(data.data());
  ok = ok && (wrap ? EVP_EncryptUpdate(ctx.get(), o, &len, in, static_cast<int>(data.size()))
                   : EVP_DecryptUpdate(ctx.get(), o, &len, in, static_cast<int>(data.size())));
  ok = ok && (wrap ? EVP_EncryptFinal_ex(ctx.get(), o + len, &fin)
                   : EVP_DecryptFinal_ex(ctx.get(), o + len, &fin));
  if (!ok) return absl::InvalidArgumentError("the wrapped key does not unwrap with this key");
  out.resize(static_cast<size_t>(len + fin));
  return out;
}

}  // namespace keyward::emulator
