#pragma once
// AWS Signature Version 4 (header form), written once for keyward's AWS clients and for the
// KMS emulator's verifier. Follows AWS's published algorithm:
//   canonical request = METHOD \n path \n canonical query \n
//                       lower-case "name:trimmed value\n" for each signed header, sorted \n
//                       signed header names joined by ';' \n hex(SHA256(body))
//   string to sign    = "AWS4-HMAC-SHA256\n" amzdate "\n" yyyymmdd/region/service/aws4_request
//                       "\n" hex(SHA256(canonical request))
//   signing key       = HMAC chain "AWS4"+secret → date → region → service → "aws4_request"
// Checked against the AWS SigV4 test-suite vectors (sigv4_test.cc). Pure functions, thread-safe.
// The secret key and the signing key never leave this file except inside the signature.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward::aws {

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys; signed as X-Amz-Security-Token
};

struct SigV4Request {
  std::string method = "POST";
  std::string path = "/";  // already URI-encoded, as sent
  std::string query;       // "a=b&c=d" as sent (components not yet encoded), or ""
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, Host included
  std::string body;
};

// "20150830T123600Z" for a unix time, and back (InvalidArgument for any other shape).
std::string AmzDate(int64_t unix_seconds);
absl::StatusOr<int64_t> ParseAmzDate(std::string_view amz_date);

// RFC 3986 encoding of everything but A-Z a-z 0-9 - . _ ~ (what SigV4 asks for).
std::string UriEncode(std::string_view s);
std::string CanonicalQueryString(std::string_view query);

// `signed_headers`: lower-case names; headers of `r` with other names are left out. Repeated
// headers are joined with ',' in the order sent. Missing signed headers give empty values (the
// verifier's signature then differs, which is the right answer).
std::string CanonicalRequest(const SigV4Request& r, const std::vector<std::string>& signed_headers);
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);
// Hex signature of `string_to_sign` under the key derived from `secret` for the scope's parts.
std::string Signature(std::string_view secret, std::string_view date, std::string_view region,
                      std::string_view service, std::string_view string_to_sign);

// Adds X-Amz-Date (and X-Amz-Security-Token with a session token) and Authorization to `r`,
// signing every header `r` carries. `r` must carry Host.
absl::Status Sign(SigV4Request& r, const SigV4Credentials& credentials, std::string_view region,
                  std::string_view service, int64_t unix_seconds);

// The parts of an "AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request,
// SignedHeaders=a;b, Signature=hex" header. InvalidArgument names what is missing.
struct SigV4Authorization {
  std::string access_key_id;
  std::string date;  // yyyymmdd
  std::string region;
  std::string service;
  std::string terminator;  // "aws4_request" when well formed
  std::vector<std::string> signed_headers;
  std::string signature;
  std::string scope() const;  // date/region/service/terminator
};
absl::StatusOr<SigV4Authorization> ParseAuthorization(std::string_view header);

// Constant-time comparison of two hex signatures.
bool SignaturesEqual(std::string_view a, std::string_view b);

}  // namespace keyward::aws
