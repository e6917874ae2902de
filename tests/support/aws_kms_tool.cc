// keyward-aws-kms-tool: the product's C++ AWS KMS provider on the command line, so the
// conformance tests can cross-check it with the official SDK (C++ encrypts, SDK decrypts, and
// the reverse). Credentials come the product's way (AWS_ACCESS_KEY_ID..., AWS_PROFILE, ...).
// Test-only; never installed.
//   keyward-aws-kms-tool wrap ARN PROJECT CONTEXT HEX      → prints the ciphertext blob (hex)
//   keyward-aws-kms-tool unwrap ARN PROJECT CONTEXT HEX    → prints the plaintext (hex)
//   keyward-aws-kms-tool describe ARN                      → "enabled can_wrap region"
// env: KW_AWS_ENDPOINT (endpoint URL), KW_CA_FILE. Exit 1 prints the provider's error.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kms/aws/aws_kms_provider.h"
#include "kms/aws/aws_replies.h"
#include "util/bytes.h"

namespace {
std::string Env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}
int Fail(const absl::Status& s) {
  fprintf(stderr, "%s\n", std::string(s.message()).c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace keyward;
  if (argc < 3) return 2;
  std::string op = argv[1];
  EncryptionKey key;
  key.id = "tool";
  key.provider = "aws-kms";
  key.key_name = argv[2];
  key.project_id = argc > 3 ? argv[3] : "";
  HttpClientOptions http_opts;
  http_opts.ca_file = Env("KW_CA_FILE");
  auto http = std::make_shared<HttpClient>(http_opts);
  std::string region = aws::RegionOfArn(key.key_name);
  auto creds = std::make_shared<aws::AwsCredentialSource>(
      aws::AwsCredentialOptionsFromEnvironment(region), http);
  aws::AwsKmsConfig cfg;
  cfg.endpoint_url = Env("KW_AWS_ENDPOINT");
  auto provider = aws::AwsKmsProvider::New(key, cfg, creds, http);
  if (!provider.ok()) return Fail(provider.status());
  if (op == "describe") {
    auto d = (*provider)->Describe();
    if (!d.ok()) return Fail(d.status());
    printf("%d %d %s\n", d->enabled, d->can_wrap, d->region.value_or("").c_str());
    return 0;
  }
  if (argc < 6) return 2;
  std::string context = argv[4];
  auto bytes = HexDecode(argv[5]);
  if (!bytes.ok()) return 2;
  if (op == "wrap") {
    auto w = (*provider)->Wrap(SecretBytes::FromView(*bytes), context);
    if (!w.ok()) return Fail(w.status());
    printf("%s\n", HexEncode(w->ciphertext).c_str());
    return 0;
  }
  WrappedKey w{"aws-kms", key.key_name, "", "SYMMETRIC_DEFAULT", *bytes};
  auto u = (*provider)->Unwrap(w, context);
  if (!u.ok()) return Fail(u.status());
  printf("%s\n", HexEncode(u->view()).c_str());
  return 0;
}
