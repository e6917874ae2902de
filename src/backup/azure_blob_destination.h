#pragma once
// Backup objects as block blobs in one Azure Blob Storage container (serve --backup-azure-*).
// An object "b-1/data/000000-00000000" is the blob of that name. Small objects go up in one
// Put Blob; larger ones as blocks (Put Block) committed by Put Block List, so a blob is either
// absent or whole, never partial. Block ids are derived from index and content
// (azure_blob_wire.h): a retried upload first asks the service which uncommitted blocks it holds
// (Get Block List) and re-sends only the missing ones. Retries with backoff on 429/5xx and
// connection failures come from HttpClient; TLS is always verified.
//
// Authentication: Shared Key (the account key, decoded, held in SecretBytes) or a Microsoft Entra
// bearer token for https://storage.azure.com from keyward's own identity. Errors name the
// account, container and object and what to do; never the key, a token or a signature.
// Thread-safe (HttpClient is; the rest is immutable after New, but for an atomic flag).

#include <atomic>
#include <memory>
#include <string>

#include "backup/azure_blob_wire.h"
#include "backup/backup_destination.h"
#include "cloud/azure/entra_token.h"
#include "cloud/http_client.h"
#include "crypto/secret_bytes.h"

namespace keyward {

struct AzureBlobConfig {
  std::string account;    // storage account name
  std::string container;  // created on first use when missing
  // The account's blob endpoint: default https://{account}.blob.core.windows.net; for a private
  // endpoint or azurite a URL, path-style ("https://127.0.0.1:10000/devstoreaccount1").
  std::string endpoint;
  std::string api_version = "2021-12-02";  // x-ms-version
  // Objects larger than this go up as blocks of this size (Put Block + Put Block List).
  size_t block_size = 4 << 20;
  // Largest object Get accepts (the local directory's limit too).
  size_t max_object_bytes = 256 << 20;
};

class AzureBlobDestination : public BackupDestination {
 public:
  // Exactly one of `account_key_base64` (Shared Key) and `tokens` (Entra) is given.
  static absl::StatusOr<std::unique_ptr<AzureBlobDestination>> New(
      AzureBlobConfig config, std::string account_key_base64,
      std::shared_ptr<EntraTokenSource> tokens, std::shared_ptr<HttpClient> http);

  // "azure:<endpoint>/<container>" (no credentials).
  std::string Describe() const override;
  absl::Status Put(const std::string& name, std::string_view data) override;
  absl::StatusOr<std::string> Get(const std::string& name) override;
  absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  absl::Status Delete(const std::string& name) override;
  absl::Status DeleteAll(const std::string& dir) override;

  // Tests: a fixed clock for x-ms-date.
  void set_now_for_test(int64_t unix_seconds) { fixed_now_ = unix_seconds; }

 private:
  AzureBlobDestination(AzureBlobConfig config, SecretBytes key,
                       std::shared_ptr<EntraTokenSource> tokens, std::shared_ptr<HttpClient> http);

  // Sends a signed request for `path` below the container ("" = the container itself).
  // Creates the container and resends once when the service says it does not exist.
  absl::StatusOr<HttpResponse> Call(const std::string& method, const std::string& blob,
                                    const BlobQuery& query, std::vector<std::string> headers,
                                    std::string_view body, size_t max_reply = 1 << 20);
  absl::StatusOr<HttpResponse> CallOnce(const std::string& method, const std::string& blob,
                                        const BlobQuery& query,
                                        const std::vector<std::string>& headers,
                                        std::string_view body, size_t max_reply, bool force_token);
  absl::Status CreateContainer();
  absl::Status PutBlocks(const std::string& name, std::string_view data);
  absl::StatusOr<std::vector<std::string>> ListNames(const std::string& prefix,
                                                     bool include_uncommitted);
  // An error for an unexpected reply to `what` on `blob`: names account, container, blob, the
  // status and the service's error code, and the fix for the usual causes.
  absl::Status Failure(const std::string& what, const std::string& blob,
                       const HttpResponse& r) const;
  absl::StatusOr<std::string> ValidName(const std::string& name) const;

  AzureBlobConfig config_;
  std::string path_prefix_;  // the endpoint URL's path ("/devstoreaccount1" or "")
  SecretBytes key_;          // decoded account key; empty with tokens_
  std::shared_ptr<EntraTokenSource> tokens_;
  std::shared_ptr<HttpClient> http_;
  std::atomic<bool> container_checked_{false};
  int64_t fixed_now_ = 0;
};

}  // namespace keyward
