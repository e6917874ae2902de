#include "kms/aws/aws_replies.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "util/base64.h"

namespace keyward::aws {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseObject(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("reply is not a JSON object");
  return j;
}

// A string member, or InvalidArgument naming it.
absl::StatusOr<std::string> Str(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("reply has no string '", name, "'"));
  }
  return it->get<std::string>();
}

std::string StrOr(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The text of the first <tag>…</tag> in `xml`, or nullopt.
std::optional<std::string> XmlText(std::string_view xml, std::string_view tag) {
  std::string open = absl::StrCat("<", std::string(tag), ">");
  std::string close = absl::StrCat("</", std::string(tag), ">");
  size_t start = xml.find(open);
  if (start == std::string_view::npos) return std::nullopt;
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(xml.substr(start, end - start));
}

}  // namespace

AwsErrorBody ParseAwsError(std::string_view body) {
  AwsErrorBody e;
  auto j = ParseObject(body);
  if (!j.ok()) return e;
  e.type = StrOr(*j, "__type");
  if (e.type.empty()) e.type = StrOr(*j, "code");
  size_t hash = e.type.rfind('#');
  if (hash != std::string::npos) e.type = e.type.substr(hash + 1);
  // Some services append ":http://internal.amazon.com/..." to the type.
  size_t colon = e.type.find(':');
  if (colon != std::string::npos) e.type.resize(colon);
  e.message = StrOr(*j, "message");
  if (e.message.empty()) e.message = StrOr(*j, "Message");
  return e;
}

absl::StatusOr<DescribeKeyReply> ParseDescribeKey(std::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  auto it = j->find("KeyMetadata");
  if (it == j->end() || !it->is_object()) {
    return absl::InvalidArgumentError("reply has no KeyMetadata object");
  }
  const json& m = *it;
  DescribeKeyReply r;
  auto id = Str(m, "KeyId");
  auto arn = Str(m, "Arn");
  auto state = Str(m, "KeyState");
  if (!id.ok()) return id.status();
  if (!arn.ok()) return arn.status();
  if (!state.ok()) return state.status();
  r.key_id = *id;
  r.arn = *arn;
  r.key_state = *state;
  auto enabled = m.find("Enabled");
  if (enabled == m.end() || !enabled->is_boolean()) {
    return absl::InvalidArgumentError("reply has no boolean 'Enabled'");
  }
  r.enabled = enabled->get<bool>();
  r.key_spec = StrOr(m, "KeySpec");
  if (r.key_spec.empty()) r.key_spec = StrOr(m, "CustomerMasterKeySpec");
  r.key_usage = StrOr(m, "KeyUsage");
  return r;
}

absl::StatusOr<EncryptReply> ParseEncryptReply(std::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  auto key = Str(*j, "KeyId");
  auto blob = Str(*j, "CiphertextBlob");
  if (!key.ok()) return key.status();
  if (!blob.ok()) return blob.status();
  auto raw = Base64Decode(*blob);
  if (!raw.ok() || raw->empty()) return absl::InvalidArgumentError("CiphertextBlob is not base64");
  return EncryptReply{*key, std::move(*raw)};
}

absl::StatusOr<DecryptReply> ParseDecryptReply(std::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  auto key = Str(*j, "KeyId");
  if (!key.ok()) return key.status();
  auto it = j->find("Plaintext");
  if (it == j->end() || !it->is_string()) {
    return absl::InvalidArgumentError("reply has no string 'Plaintext'");
  }
  std::string& encoded = it->get_ref<std::string&>();
  auto raw = Base64Decode(encoded);
  OPENSSL_cleanse(encoded.data(), encoded.size());
  if (!raw.ok()) return absl::InvalidArgumentError("Plaintext is not base64");
  DecryptReply r{*key, SecretBytes::FromView(*raw)};
  OPENSSL_cleanse(raw->data(), raw->size());
  return r;
}

std::string RegionOfArn(std::string_view arn) {
  // arn:PARTITION:kms:REGION:ACCOUNT:...
  size_t at = 0;
  for (int field = 0; field < 3; ++field) {
    at = arn.find(':', at);
    if (at == std::string_view::npos) return "";
    ++at;
  }
  size_t end = arn.find(':', at);
  if (end == std::string_view::npos) return "";
  if (arn.substr(0, 4) != "arn:") return "";
  return std::string(arn.substr(at, end - at));
}

std::map<std::string, std::map<std::string, std::string>> ParseIni(std::string_view text) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string section;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    absl::string_view raw(text.data() + pos, nl - pos);
    pos = nl + 1;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      size_t close = line.find(']');
      section = close == absl::string_view::npos
                    ? ""
                    : std::string(absl::StripAsciiWhitespace(line.substr(1, close - 1)));
      continue;
    }
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos || section.empty()) continue;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, eq)));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    // An inline comment needs whitespace before it (values may contain '#').
    for (const char* marker : {" #", " ;", "\t#", "\t;"}) {
      size_t c = value.find(marker);
      if (c != absl::string_view::npos) value = absl::StripAsciiWhitespace(value.substr(0, c));
    }
    out[section][key] = std::string(value);
  }
  return out;
}

absl::StatusOr<int64_t> ParseIso8601(std::string_view text) {
  // yyyy-MM-ddTHH:mm:ss, optional fraction, Z
  std::string t(text.substr(0, 64));
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("'", t, "' is not an ISO 8601 UTC time"));
  };
  static constexpr char kShape[] = "dddd-dd-ddTdd:dd:dd";
  if (t.size() < 20 || t.back() != 'Z') return bad();
  for (size_t i = 0; i + 1 < sizeof(kShape); ++i) {
    if (kShape[i] == 'd' ? !absl::ascii_isdigit(static_cast<unsigned char>(t[i]))
                         : t[i] != kShape[i]) {
      return bad();
    }
  }
  auto num = [&](size_t at, size_t n) {
    int v = 0;
    for (size_t i = at; i < at + n; ++i) v = v * 10 + (t[i] - '0');
    return v;
  };
  int y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return bad();
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm));
}

absl::StatusOr<TemporaryCredentials> ParseStsCredentials(std::string_view xml) {
  TemporaryCredentials c;
  auto id = XmlText(xml, "AccessKeyId");
  auto secret = XmlText(xml, "SecretAccessKey");
  auto token = XmlText(xml, "SessionToken");
  auto expiration = XmlText(xml, "Expiration");
  if (!id || !secret || !token || !expiration || id->empty() || secret->empty()) {
    return absl::InvalidArgumentError("STS reply has no complete Credentials element");
  }
  auto when = ParseIso8601(*expiration);
  if (!when.ok()) return when.status();
  return TemporaryCredentials{*id, *secret, *token, *when};
}

absl::StatusOr<std::string> ParseCallerIdentityArn(std::string_view xml) {
  auto arn = XmlText(xml, "Arn");
  if (!arn || !absl::StartsWith(*arn, "arn:") || arn->size() > 2048) {
    return absl::InvalidArgumentError("STS GetCallerIdentity reply has no Arn");
  }
  // arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION
  size_t marker = arn->find(":assumed-role/");
  if (marker == std::string::npos) return *arn;
  std::vector<std::string> head = absl::StrSplit(arn->substr(0, marker), ':');
  std::string rest = arn->substr(marker + 14);
  size_t slash = rest.find('/');
  if (head.size() != 5 || head[2] != "sts" || slash == std::string::npos) {
    return absl::InvalidArgumentError("STS GetCallerIdentity reply has a malformed Arn");
  }
  return absl::StrCat("arn:", head[1], ":iam::", head[4], ":role/", rest.substr(0, slash));
}

absl::StatusOr<TemporaryCredentials> ParseImdsCredentials(std::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  if (StrOr(*j, "Code") != "Success") {
    return absl::UnavailableError(
        absl::StrCat("instance metadata credentials not ready (Code ", StrOr(*j, "Code"), ")"));
  }
  auto id = Str(*j, "AccessKeyId");
  auto secret = Str(*j, "SecretAccessKey");
  auto token = Str(*j, "Token");
  auto expiration = Str(*j, "Expiration");
  for (const auto* s : {&id, &secret, &token, &expiration}) {
    if (!s->ok()) return s->status();
  }
  auto when = ParseIso8601(*expiration);
  if (!when.ok()) return when.status();
  return TemporaryCredentials{*id, *secret, *token, *when};
}

}  // namespace keyward::aws
