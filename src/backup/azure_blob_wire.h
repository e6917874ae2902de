#pragma once
// The Azure Blob Storage wire pieces AzureBlobDestination needs, as pure functions so they are
// unit-tested without a network: Shared Key signing, the List Blobs / Get Block List XML replies,
// block ids, and percent-encoding. See README "Backups" and the Blob service REST reference.
// Thread-compatible free functions; no state.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

// Query parameters as (name, decoded value), in the order they go on the URL.
using BlobQuery = std::vector<std::pair<std::string, std::string>>;

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when `keep_slash`).
std::string BlobPercentEncode(std::string_view s, bool keep_slash);
// "?a=1&b=2" (encoded), or "" for no parameters.
std::string BlobQueryString(const BlobQuery& query);

// The Shared Key string to sign (version 2009-09-19 and later):
//   VERB \n Content-Encoding \n Content-Language \n Content-Length (empty when 0) \n Content-MD5 \n
//   Content-Type \n Date \n If-Modified-Since \n If-Match \n If-None-Match \n
//   If-Unmodified-Since \n Range \n
//   + each x-ms-* header "name:value\n" (names lower-case, sorted, values trimmed)
//   + "/" account url_path, then "\nname:value" for each query parameter (names lower-case,
//     sorted; values decoded, a repeated name's values sorted and joined with ',').
// `headers`: lower-case names → values, as sent. `url_path`: the URL's path as sent (encoded;
// on a path-style endpoint it starts with the account again: "/devstoreaccount1/c/b").
std::string SharedKeyStringToSign(std::string_view method,
                                  const std::map<std::string, std::string>& headers,
                                  std::string_view account, std::string_view url_path,
                                  const BlobQuery& query);
// "SharedKey account:base64(HMAC-SHA256(key, string_to_sign))"; `key` is the decoded account key.
std::string SharedKeyAuthorization(std::string_view account, std::string_view key,
                                   std::string_view string_to_sign);
// RFC 1123 date in GMT ("Sun, 29 Nov 2026 06:56:25 GMT") for x-ms-date.
std::string BlobHttpDate(int64_t unix_seconds);

// One page of List Blobs: the blob names (XML entities decoded) and NextMarker ("" on the last
// page). InvalidArgument on a reply that is not a well-formed listing or over the bounds.
struct BlobListPage {
  std::vector<std::string> names;
  std::string next_marker;
};
absl::StatusOr<BlobListPage> ParseBlobList(std::string_view xml);

// Get Block List: the blocks of `section` ("UncommittedBlocks" or "CommittedBlocks") as
// base64 id → size.
absl::StatusOr<std::map<std::string, uint64_t>> ParseBlockList(std::string_view xml,
                                                               std::string_view section);
// The Put Block List body naming `ids` (base64) as Latest, in order.
std::string BlockListXml(const std::vector<std::string>& ids);

// A block's id: base64 of "<index, 6 digits>-<first 32 hex of SHA-256(data)>", the same length
// for every block of a blob (the service requires it). The same data at the same index gets the
// same id, so a retried or resumed upload finds the blocks the service already holds and re-sends
// only the others; different data never reuses a stale block.
std::string BlockIdFor(uint32_t index, std::string_view data);

// The service's error code: the x-ms-error-code header, else <Code> of an <Error> body, else
// "". Never the service's message text, which for a signature mismatch repeats the string it
// signed.
std::string BlobErrorCode(const std::map<std::string, std::string>& headers, std::string_view body);

}  // namespace keyward
