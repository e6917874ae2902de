// keyward-azure-wrap: the product's C++ Azure Key Vault provider on the command line, so the
// conformance tests can cross-check it with the official SDK (C++ wraps, SDK unwraps, and the
// reverse). Test-only; never installed.
//   keyward-azure-wrap wrap|unwrap VAULT KEY HEX [KID]   (env: AZURE_TENANT_ID, AZURE_CLIENT_ID,
//   AZURE_CLIENT_SECRET, KW_AUTHORITY, KW_VAULT_TEMPLATE, KW_CONNECT_TO, KW_CA_FILE)
// Prints "kid hex" for wrap and "hex" for unwrap.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kms/azure/azure_key_vault_provider.h"
#include "util/bytes.h"

namespace {
std::string Env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}
}  // namespace

int main(int argc, char** argv) {
  using namespace keyward;
  if (argc < 5) return 2;
  std::string op = argv[1];
  EncryptionKey key;
  key.provider = "azure-key-vault";
  key.region = "eastus";
  key.key_name = argv[3];
  key.config_json = std::string("{\"key_vault_name\":\"") + argv[2] + "\"}";
  HttpClientOptions http_opts;
  http_opts.connect_to = Env("KW_CONNECT_TO");
  http_opts.ca_file = Env("KW_CA_FILE");
  auto http = std::make_shared<HttpClient>(http_opts);
  EntraIdentity id;
  id.authority_host = Env("KW_AUTHORITY");
  id.tenant_id = Env("AZURE_TENANT_ID");
  id.client_id = Env("AZURE_CLIENT_ID");
  id.client_secret = Env("AZURE_CLIENT_SECRET");
  AzureKeyVaultConfig cfg;
  cfg.vault_url_template = Env("KW_VAULT_TEMPLATE");
  auto provider =
      AzureKeyVaultProvider::New(key, cfg, std::make_shared<EntraTokenSource>(id, http), http);
  auto bytes = HexDecode(argv[4]);
  if (!provider.ok() || !bytes.ok()) return 2;
  if (op == "wrap") {
    auto w = (*provider)->Wrap(SecretBytes::FromView(*bytes), "");
    if (!w.ok()) {
      fprintf(stderr, "%s\n", std::string(w.status().message()).c_str());
      return 1;
    }
    printf("%s %s\n", w->key_id.c_str(), HexEncode(w->ciphertext).c_str());
    return 0;
  }
  if (argc < 6) return 2;
  WrappedKey w{"azure-key-vault", argv[5], "", "RSA-OAEP-256", *bytes};
  auto u = (*provider)->Unwrap(w, "");
  if (!u.ok()) {
    fprintf(stderr, "%s\n", std::string(u.status().message()).c_str());
    return 1;
  }
  printf("%s\n", HexEncode(u->view()).c_str());
  return 0;
}
