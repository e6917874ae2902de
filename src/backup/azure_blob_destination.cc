#include "backup/azure_blob_destination.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "util/base64.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

constexpr size_t kMaxBlocksPerBlob = 50000;  // the service's limit
constexpr size_t kListReplyCap = 8 << 20;
constexpr size_t kMaxListPages = 20000;
constexpr char kStorageResource[] = "https://storage.azure.com";

bool SafeBlobSegment(absl::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
           ch == '-';
  });
}

// Container names: 3-63 of a-z, 0-9 and '-', starting and ending with a letter or digit, no "--".
bool ValidContainer(const std::string& c) {
  if (c.size() < 3 || c.size() > 63 || c.front() == '-' || c.back() == '-') return false;
  if (c.find("--") != std::string::npos) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<AzureBlobDestination>> AzureBlobDestination::New(
    AzureBlobConfig config, std::string account_key_base64,
    std::shared_ptr<EntraTokenSource> tokens, std::shared_ptr<HttpClient> http) {
  const std::string& a = config.account;
  if (a.size() < 3 || a.size() > 24 || !std::all_of(a.begin(), a.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("--backup-azure-account '", a,
                     "' is not a storage account name (3-24 lower-case letters and digits)"));
  }
  if (!ValidContainer(config.container)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--backup-azure-container '", config.container,
        "' is not a container name (3-63 of a-z, 0-9 and '-', starting and ending with a letter "
        "or digit)"));
  }
  if (config.endpoint.empty()) {
    config.endpoint = absl::StrCat("https://", a, ".blob.core.windows.net");
  }
  while (!config.endpoint.empty() && config.endpoint.back() == '/') config.endpoint.pop_back();
  if (config.endpoint.rfind("https://", 0) != 0 ||
      config.endpoint.find_first_of("?#@") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--backup-azure-endpoint '", config.endpoint,
        "' must be an https:// URL without query or credentials (TLS is always verified; "
        "--backup-azure-ca-file trusts a private CA)"));
  }
  if (config.block_size < (64 << 10) || config.block_size > (100 << 20)) {
    return absl::InvalidArgumentError("--backup-azure-block-size must be 65536 to 104857600 bytes");
  }
  if ((tokens == nullptr) == account_key_base64.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Azure Blob backups to account ", a,
        " need one credential: the account key in AZURE_STORAGE_KEY, or keyward's Entra identity "
        "(--azure-tenant-id/--azure-client-id with a secret, certificate, workload or managed "
        "identity) and no AZURE_STORAGE_KEY"));
  }
  SecretBytes key;
  if (!account_key_base64.empty()) {
    auto decoded = Base64Decode(account_key_base64);
    if (!decoded.ok() || decoded->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("AZURE_STORAGE_KEY is not base64: set it to one of storage account ", a,
                       "'s access keys (Azure portal: Security + networking > Access keys)"));
    }
    key = SecretBytes::FromView(*decoded);
    WipeString(*decoded);
    WipeString(account_key_base64);
  }
  return std::unique_ptr<AzureBlobDestination>(new AzureBlobDestination(
      std::move(config), std::move(key), std::move(tokens), std::move(http)));
}

AzureBlobDestination::AzureBlobDestination(AzureBlobConfig config, SecretBytes key,
                                           std::shared_ptr<EntraTokenSource> tokens,
                                           std::shared_ptr<HttpClient> http)
    : config_(std::move(config)),
      key_(std::move(key)),
      tokens_(std::move(tokens)),
      http_(std::move(http)) {
  size_t host_start = config_.endpoint.find("://") + 3;
  size_t slash = config_.endpoint.find('/', host_start);
  if (slash != std::string::npos) path_prefix_ = config_.endpoint.substr(slash);
}

std::string AzureBlobDestination::Describe() const {
  return absl::StrCat("azure:", config_.endpoint, "/", config_.container);
}

absl::StatusOr<std::string> AzureBlobDestination::ValidName(const std::string& name) const {
  for (absl::string_view seg : absl::StrSplit(name, '/')) {
    if (!SafeBlobSegment(seg)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid backup object name '", name, "'"));
    }
  }
  return name;
}

absl::StatusOr<HttpResponse> AzureBlobDestination::CallOnce(const std::string& method,
                                                            const std::string& blob,
                                                            const BlobQuery& query,
                                                            const std::vector<std::string>& extra,
                                                            std::string_view body, size_t max_reply,
                                                            bool force_token) {
  std::string path = absl::StrCat(path_prefix_, "/", config_.container);
  if (!blob.empty()) absl::StrAppend(&path, "/", BlobPercentEncode(blob, /*keep_slash=*/true));
  int64_t now = fixed_now_ ? fixed_now_
                           : std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  HttpRequest r;
  r.method = method;
  r.url = absl::StrCat(config_.endpoint.substr(0, config_.endpoint.size() - path_prefix_.size()),
                       path, BlobQueryString(query));
  r.body = std::string(body);
  r.max_response_bytes = max_reply;
  r.headers = extra;
  r.headers.push_back("x-ms-date: " + BlobHttpDate(now));
  r.headers.push_back("x-ms-version: " + config_.api_version);
  if (method == "PUT") {
    r.headers.push_back("Expect:");  // no 100-continue round trip per block
    bool typed = std::any_of(extra.begin(), extra.end(), [](const std::string& h) {
      return absl::StartsWithIgnoreCase(h, "content-type:");
    });
    if (!typed) r.headers.push_back("Content-Type: application/octet-stream");
  }
  if (!key_.empty()) {
    std::map<std::string, std::string> signed_headers;
    for (const std::string& h : r.headers) {
      size_t colon = h.find(':');
      if (colon == std::string::npos || colon + 1 == h.size()) continue;
      signed_headers[absl::AsciiStrToLower(h.substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(h.substr(colon + 1)));
    }
    // curl sends the body's length (0 included) for every PUT; GET and DELETE carry none.
    if (method == "PUT") signed_headers["content-length"] = std::to_string(body.size());
    r.headers.push_back(
        "Authorization: " +
        SharedKeyAuthorization(
            config_.account, key_.view(),
            SharedKeyStringToSign(method, signed_headers, config_.account, path, query)));
  } else {
    auto token = tokens_->Token(kStorageResource, force_token);
    if (!token.ok()) {
      return absl::Status(token.status().code(),
                          absl::StrCat("cannot get an Entra token for Azure Blob Storage account ",
                                       config_.account, ": ", token.status().message()));
    }
    r.headers.push_back("Authorization: Bearer " + *token);
  }
  auto reply = http_->Send(r);
  if (!reply.ok()) {
    std::string hint = absl::StrContains(reply.status().message(), "certificate")
                           ? " (a private CA or emulator: --backup-azure-ca-file)"
                           : "";
    return absl::Status(reply.status().code(),
                        absl::StrCat("Azure Blob Storage account ", config_.account, ", container ",
                                     config_.container, ": ", reply.status().message(), hint));
  }
  return reply;
}

absl::StatusOr<HttpResponse> AzureBlobDestination::Call(const std::string& method,
                                                        const std::string& blob,
                                                        const BlobQuery& query,
                                                        std::vector<std::string> headers,
                                                        std::string_view body, size_t max_reply) {
  ASSIGN_OR_RETURN(HttpResponse r,
                   CallOnce(method, blob, query, headers, body, max_reply, /*force=*/false));
  if (r.status == 401 && tokens_) {  // an expired or revoked token: one fresh one
    ASSIGN_OR_RETURN(r, CallOnce(method, blob, query, headers, body, max_reply, /*force=*/true));
  }
  if (r.status == 404 && method == "PUT" && !blob.empty() &&
      BlobErrorCode(r.headers, r.body) == "ContainerNotFound" && !container_checked_) {
    RETURN_IF_ERROR(CreateContainer());
    ASSIGN_OR_RETURN(r, CallOnce(method, blob, query, headers, body, max_reply, false));
  }
  return r;
}

absl::Status AzureBlobDestination::CreateContainer() {
  ASSIGN_OR_RETURN(HttpResponse r,
                   CallOnce("PUT", "", {{"restype", "container"}}, {}, "", 1 << 20, false));
  // 409 ContainerAlreadyExists: another writer made it first.
  if (r.status != 201 && r.status != 409) return Failure("create the container", "", r);
  container_checked_ = true;
  return absl::OkStatus();
}

absl::Status AzureBlobDestination::Failure(const std::string& what, const std::string& blob,
                                           const HttpResponse& r) const {
  std::string code = BlobErrorCode(r.headers, r.body);
  std::string action =
      absl::StrCat("Azure Blob Storage account ", config_.account, ", container ",
                   config_.container, ": cannot ", what, blob.empty() ? "" : " ", blob);
  std::string status = absl::StrCat("HTTP ", r.status, code.empty() ? "" : " ", code);
  if (r.status == 403 || r.status == 401) {
    std::string fix =
        !key_.empty() ? absl::StrCat("set AZURE_STORAGE_KEY to one of account ", config_.account,
                                     "'s access keys (and check the server's clock)")
                      : absl::StrCat(
                            "grant keyward's Entra identity the Storage Blob Data Contributor "
                            "role on container ",
                            config_.container, " of account ", config_.account);
    return absl::PermissionDeniedError(
        absl::StrCat(action, ": the request was refused (", status, "); ", fix));
  }
  if (code == "ContainerNotFound") {
    return absl::NotFoundError(absl::StrCat(action, ": the container does not exist (", status,
                                            "); a backup creates it, or create it yourself"));
  }
  absl::StatusCode c = r.status == 429 || r.status >= 500 ? absl::StatusCode::kUnavailable
                                                          : absl::StatusCode::kFailedPrecondition;
  return absl::Status(c, absl::StrCat(action, " (", status, ")"));
}

absl::Status AzureBlobDestination::Put(const std::string& name, std::string_view data) {
  RETURN_IF_ERROR(ValidName(name).status());
  if (data.size() > config_.block_size) return PutBlocks(name, data);
  ASSIGN_OR_RETURN(HttpResponse r, Call("PUT", name, {}, {"x-ms-blob-type: BlockBlob"}, data));
  if (r.status != 201) return Failure("write", name, r);
  return absl::OkStatus();
}

absl::Status AzureBlobDestination::PutBlocks(const std::string& name, std::string_view data) {
  size_t n = (data.size() + config_.block_size - 1) / config_.block_size;
  if (n > kMaxBlocksPerBlob) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup object ", name, " is too large for ", kMaxBlocksPerBlob,
                     " blocks of --backup-azure-block-size ", config_.block_size));
  }
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(BlockIdFor(static_cast<uint32_t>(i),
                             data.substr(i * config_.block_size, config_.block_size)));
  }
  // What an earlier, interrupted upload of this object left: those blocks are not sent again.
  std::map<std::string, uint64_t> have;
  ASSIGN_OR_RETURN(HttpResponse list,
                   Call("GET", name, {{"comp", "blocklist"}, {"blocklisttype", "uncommitted"}}, {},
                        "", 4 << 20));
  if (list.status == 200) {
    auto parsed = ParseBlockList(list.body, "UncommittedBlocks");
    if (!parsed.ok()) {
      return absl::DataLossError(absl::StrCat("Azure Blob Storage account ", config_.account,
                                              ": the block list of ", name,
                                              " is unreadable: ", parsed.status().message()));
    }
    have = std::move(*parsed);
  } else if (list.status != 404) {
    return Failure("read the block list of", name, list);
  }
  for (size_t i = 0; i < n; ++i) {
    std::string_view block = data.substr(i * config_.block_size, config_.block_size);
    auto it = have.find(ids[i]);
    if (it != have.end() && it->second == block.size()) continue;
    ASSIGN_OR_RETURN(HttpResponse r,
                     Call("PUT", name, {{"comp", "block"}, {"blockid", ids[i]}}, {}, block));
    if (r.status != 201) return Failure(absl::StrCat("write block ", i, " of"), name, r);
  }
  ASSIGN_OR_RETURN(HttpResponse r, Call("PUT", name, {{"comp", "blocklist"}},
                                        {"Content-Type: application/xml"}, BlockListXml(ids)));
  if (r.status != 201) return Failure("commit the blocks of", name, r);
  return absl::OkStatus();
}

absl::StatusOr<std::string> AzureBlobDestination::Get(const std::string& name) {
  RETURN_IF_ERROR(ValidName(name).status());
  ASSIGN_OR_RETURN(HttpResponse r, Call("GET", name, {}, {}, "", config_.max_object_bytes));
  if (r.status == 404) {
    return absl::NotFoundError(
        absl::StrCat("backup object ", name, " is missing from ", Describe()));
  }
  if (r.status != 200) return Failure("read", name, r);
  return std::move(r.body);
}

absl::StatusOr<std::vector<std::string>> AzureBlobDestination::ListNames(const std::string& prefix,
                                                                         bool include_uncommitted) {
  std::vector<std::string> out;
  std::string marker;
  for (size_t page = 0; page < kMaxListPages; ++page) {
    BlobQuery q = {
        {"restype", "container"}, {"comp", "list"}, {"prefix", prefix}, {"maxresults", "5000"}};
    if (include_uncommitted) q.push_back({"include", "uncommittedblobs"});
    if (!marker.empty()) q.push_back({"marker", marker});
    ASSIGN_OR_RETURN(HttpResponse r, Call("GET", "", q, {}, "", kListReplyCap));
    if (r.status == 404 && BlobErrorCode(r.headers, r.body) == "ContainerNotFound") return out;
    if (r.status != 200) return Failure("list the objects under", prefix, r);
    auto parsed = ParseBlobList(r.body);
    if (!parsed.ok()) {
      return absl::DataLossError(absl::StrCat("Azure Blob Storage account ", config_.account,
                                              ", container ", config_.container,
                                              ": unreadable listing: ", parsed.status().message()));
    }
    for (std::string& name : parsed->names) {
      // Only what a listing for `prefix` may hold; anything else is ignored, never acted on.
      if (name.compare(0, prefix.size(), prefix) == 0) out.push_back(std::move(name));
    }
    if (parsed->next_marker.empty()) {
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      return out;
    }
    if (parsed->next_marker == marker) {
      return absl::DataLossError(absl::StrCat("Azure Blob Storage account ", config_.account,
                                              ": the listing of ", prefix, " does not advance"));
    }
    marker = std::move(parsed->next_marker);
  }
  return absl::ResourceExhaustedError(absl::StrCat("Azure Blob Storage account ", config_.account,
                                                   ": more than ", kMaxListPages,
                                                   " pages of objects under ", prefix));
}

absl::StatusOr<std::vector<std::string>> AzureBlobDestination::List(const std::string& prefix) {
  return ListNames(prefix, /*include_uncommitted=*/false);
}

absl::Status AzureBlobDestination::Delete(const std::string& name) {
  RETURN_IF_ERROR(ValidName(name).status());
  ASSIGN_OR_RETURN(HttpResponse r, Call("DELETE", name, {}, {}, ""));
  if (r.status == 202 || r.status == 200 || r.status == 404) return absl::OkStatus();
  return Failure("delete", name, r);
}

absl::Status AzureBlobDestination::DeleteAll(const std::string& dir) {
  if (dir.empty() || dir.back() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("'", dir, "' is not an object directory"));
  }
  RETURN_IF_ERROR(ValidName(dir.substr(0, dir.size() - 1)).status());
  // Blobs with only uncommitted blocks (an interrupted upload) too; the service also drops
  // those by itself after a week.
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListNames(dir, /*include_uncommitted=*/true));
  for (const std::string& name : names) RETURN_IF_ERROR(Delete(name));
  return absl::OkStatus();
}

}  // namespace keyward
