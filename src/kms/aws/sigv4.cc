#include "kms/aws/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/sha256.h"
#include "util/bytes.h"

namespace keyward::aws {
namespace {

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  std::string mac(reinterpret_cast<char*>(out), len);
  OPENSSL_cleanse(out, sizeof(out));
  return mac;
}

void Wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

// Trims and collapses runs of spaces, as the canonical header form asks.
std::string CanonicalValue(std::string_view sv) {
  absl::string_view v(sv.data(), sv.size());
  std::string out;
  bool space = false;
  for (char c : absl::StripAsciiWhitespace(v)) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string AmzDate(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  return absl::StrFormat("%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec);
}

absl::StatusOr<int64_t> ParseAmzDate(std::string_view s) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("X-Amz-Date '", std::string(s.substr(0, 32)), "' is not yyyyMMddTHHmmssZ"));
  };
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return bad();
  int f[6];
  const int at[6][2] = {{0, 4}, {4, 2}, {6, 2}, {9, 2}, {11, 2}, {13, 2}};
  for (int i = 0; i < 6; ++i) {
    std::string_view part = s.substr(at[i][0], at[i][1]);
    if (!std::all_of(part.begin(), part.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(std::string(part), &f[i])) {
      return bad();
    }
  }
  if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 60) {
    return bad();
  }
  struct tm tm {};
  tm.tm_year = f[0] - 1900;
  tm.tm_mon = f[1] - 1;
  tm.tm_mday = f[2];
  tm.tm_hour = f[3];
  tm.tm_min = f[4];
  tm.tm_sec = f[5];
  return static_cast<int64_t>(timegm(&tm));
}

std::string UriEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

std::string CanonicalQueryString(std::string_view sv) {
  absl::string_view query(sv.data(), sv.size());
  if (query.empty()) return "";
  std::vector<std::pair<std::string, std::string>> params;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    params.emplace_back(UriEncode(std::string(kv.first)), UriEncode(std::string(kv.second)));
  }
  std::sort(params.begin(), params.end());
  std::vector<std::string> joined;
  joined.reserve(params.size());
  for (const auto& [k, v] : params) joined.push_back(absl::StrCat(k, "=", v));
  return absl::StrJoin(joined, "&");
}

std::string CanonicalRequest(const SigV4Request& r,
                             const std::vector<std::string>& signed_headers) {
  std::map<std::string, std::string> values;
  for (const auto& name : signed_headers) values[absl::AsciiStrToLower(name)];
  for (const auto& [name, value] : r.headers) {
    auto it = values.find(absl::AsciiStrToLower(name));
    if (it == values.end()) continue;
    if (!it->second.empty()) it->second += ',';
    it->second += CanonicalValue(value);
  }
  std::string headers;
  std::vector<std::string> names;
  for (const auto& [name, value] : values) {
    absl::StrAppend(&headers, name, ":", value, "\n");
    names.push_back(name);
  }
  return absl::StrCat(r.method, "\n", r.path, "\n", CanonicalQueryString(r.query), "\n", headers,
                      "\n", absl::StrJoin(names, ";"), "\n", Sha256Hex(r.body));
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  return absl::StrCat("AWS4-HMAC-SHA256\n", std::string(amz_date), "\n", std::string(scope), "\n",
                      Sha256Hex(canonical_request));
}

std::string Signature(std::string_view secret, std::string_view date, std::string_view region,
                      std::string_view service, std::string_view string_to_sign) {
  std::string k = absl::StrCat("AWS4", std::string(secret));
  std::string k_date = Hmac(k, date);
  std::string k_region = Hmac(k_date, region);
  std::string k_service = Hmac(k_region, service);
  std::string k_signing = Hmac(k_service, "aws4_request");
  std::string sig = HexEncode(Hmac(k_signing, string_to_sign));
  for (std::string* s : {&k, &k_date, &k_region, &k_service, &k_signing}) Wipe(*s);
  return sig;
}

absl::Status Sign(SigV4Request& r, const SigV4Credentials& c, std::string_view region,
                  std::string_view service, int64_t unix_seconds) {
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return absl::FailedPreconditionError("no AWS access key to sign the request with");
  }
  bool host = false;
  for (const auto& [name, value] : r.headers) host |= absl::EqualsIgnoreCase(name, "host");
  if (!host) return absl::InvalidArgumentError("a SigV4 request must carry a Host header");
  std::string amz_date = AmzDate(unix_seconds);
  r.headers.emplace_back("X-Amz-Date", amz_date);
  if (!c.session_token.empty()) r.headers.emplace_back("X-Amz-Security-Token", c.session_token);
  std::vector<std::string> names;
  for (const auto& [name, value] : r.headers) names.push_back(absl::AsciiStrToLower(name));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string date = amz_date.substr(0, 8);
  std::string scope =
      absl::StrCat(date, "/", std::string(region), "/", std::string(service), "/aws4_request");
  std::string sts = StringToSign(amz_date, scope, CanonicalRequest(r, names));
  r.headers.emplace_back("Authorization",
                         absl::StrCat("AWS4-HMAC-SHA256 Credential=", c.access_key_id, "/", scope,
                                      ", SignedHeaders=", absl::StrJoin(names, ";"), ", Signature=",
                                      Signature(c.secret_access_key, date, region, service, sts)));
  return absl::OkStatus();
}

std::string SigV4Authorization::scope() const {
  return absl::StrCat(date, "/", region, "/", service, "/", terminator);
}

absl::StatusOr<SigV4Authorization> ParseAuthorization(std::string_view sv) {
  absl::string_view header(sv.data(), sv.size());
  constexpr absl::string_view kAlgorithm = "AWS4-HMAC-SHA256 ";
  if (!absl::StartsWith(header, kAlgorithm)) {
    return absl::InvalidArgumentError("Authorization header requires the AWS4-HMAC-SHA256 scheme");
  }
  SigV4Authorization a;
  bool credential = false, signed_headers = false, signature = false;
  for (absl::string_view part : absl::StrSplit(header.substr(kAlgorithm.size()), ',')) {
    part = absl::StripAsciiWhitespace(part);
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first == "Credential") {
      std::vector<std::string> c = absl::StrSplit(kv.second, '/');
      if (c.size() != 5) {
        return absl::InvalidArgumentError(
            "Authorization header requires a Credential of the form "
            "AccessKeyId/yyyyMMdd/region/service/aws4_request");
      }
      a.access_key_id = c[0];
      a.date = c[1];
      a.region = c[2];
      a.service = c[3];
      a.terminator = c[4];
      credential = true;
    } else if (kv.first == "SignedHeaders") {
      a.signed_headers = absl::StrSplit(kv.second, ';', absl::SkipEmpty());
      signed_headers = true;
    } else if (kv.first == "Signature") {
      a.signature = std::string(kv.second);
      signature = true;
    }
  }
  if (!credential) {
    return absl::InvalidArgumentError("Authorization header requires 'Credential' parameter");
  }
  if (!signed_headers) {
    return absl::InvalidArgumentError("Authorization header requires 'SignedHeaders' parameter");
  }
  if (!signature) {
    return absl::InvalidArgumentError("Authorization header requires 'Signature' parameter");
  }
  return a;
}

bool SignaturesEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace keyward::aws
