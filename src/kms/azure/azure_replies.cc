#include "kms/azure/azure_replies.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "util/base64.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr int64_t kMaxUnixSeconds = 253402300799;  // 9999-12-31T23:59:59Z
constexpr int64_t kMaxTokenLifetime = 10LL * 366 * 24 * 3600;
constexpr size_t kMaxVersionLength = 128;

enum class Need { kRequired, kOptional };

std::string PathOf(std::string_view parent, std::string_view name) {
  // (Debian's Abseil has its own string_view: plain std::string concatenation here.)
  std::string path(parent);
  if (!path.empty()) path += '.';
  path += name;
  return path;
}

absl::StatusOr<json> ParseObject(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("the reply is not JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("the reply is not a JSON object");
  return j;
}

// The member `name` of object `obj`; nullptr when an optional member is absent or null.
absl::StatusOr<const json*> Member(const json& obj, std::string_view parent, const char* name,
                                   Need need) {
  auto it = obj.find(name);
  if (it != obj.end() && !it->is_null()) return &*it;
  if (need == Need::kOptional) return nullptr;
  return absl::InvalidArgumentError(absl::StrCat("field '", PathOf(parent, name), "' is missing"));
}

absl::Status WrongType(std::string_view parent, const char* name, std::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("field '", PathOf(parent, name), "' is not ", std::string(want)));
}

absl::StatusOr<const json*> ReadObject(const json& obj, std::string_view parent, const char* name,
                                       Need need) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, parent, name, need));
  if (v != nullptr && !v->is_object()) return WrongType(parent, name, "an object");
  return v;
}

absl::StatusOr<std::optional<std::string>> ReadString(const json& obj, std::string_view parent,
                                                      const char* name, Need need) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, parent, name, need));
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return WrongType(parent, name, "a string");
  return v->get_ref<const std::string&>();
}

absl::StatusOr<std::optional<bool>> ReadBool(const json& obj, std::string_view parent,
                                             const char* name, Need need) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, parent, name, need));
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return WrongType(parent, name, "a boolean");
  return v->get<bool>();
}

// A whole number in [lo, hi]; from a JSON number, and from a decimal string when `strings`.
absl::StatusOr<std::optional<int64_t>> ReadInt(const json& obj, std::string_view parent,
                                               const char* name, Need need, int64_t lo, int64_t hi,
                                               bool strings) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, parent, name, need));
  if (v == nullptr) return std::nullopt;
  int64_t n = 0;
  bool ok = false;
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    ok = u <= static_cast<uint64_t>(hi);
    n = ok ? static_cast<int64_t>(u) : 0;
  } else if (v->is_number_integer()) {
    n = v->get<int64_t>();
    ok = true;
  } else if (v->is_number_float()) {
    double d = v->get<double>();
    // Range-check before converting: a double beyond int64 makes the cast undefined.
    ok = std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(lo) &&
         d <= static_cast<double>(hi);
    n = ok ? static_cast<int64_t>(d) : 0;
  } else if (strings && v->is_string()) {
    ok = absl::SimpleAtoi(v->get_ref<const std::string&>(), &n);
  } else {
    return WrongType(parent, name, strings ? "a number or a numeric string" : "a number");
  }
  if (!ok || n < lo || n > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("field '", PathOf(parent, name), "' is not a whole number in range"));
  }
  return n;
}

bool VisibleAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// Length of the well-formed UTF-8 sequence at s[i], or 0 (the table of RFC 3629 section 4).
size_t Utf8Length(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = at(i);
  if (c < 0x80) return 1;
  size_t len = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
  if (len == 0 || i + len > s.size()) return 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c == 0xE0) lo = 0xA0;
  if (c == 0xED) hi = 0x9F;
  if (c == 0xF0) lo = 0x90;
  if (c == 0xF4) hi = 0x8F;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  }
  return len;
}

}  // namespace

std::string KeyVersionFromKid(std::string_view kid) {
  constexpr std::string_view kScheme = "https://";
  if (kid.substr(0, kScheme.size()) != kScheme) return "";
  std::vector<std::string_view> seg;
  for (std::string_view rest = kid.substr(kScheme.size());;) {
    size_t slash = rest.find('/');
    seg.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos || seg.size() > 4) break;
    rest = rest.substr(slash + 1);
  }
  if (seg.size() != 4 || seg[0].empty() || seg[1] != "keys" || seg[2].empty() || seg[3].empty() ||
      seg[3].size() > kMaxVersionLength) {
    return "";
  }
  for (char c : seg[3]) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return "";
  }
  return std::string(seg[3]);
}

std::string ExcerptForMessage(std::string_view text, size_t max) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t len = Utf8Length(text, i);
    if (out.size() + std::max<size_t>(len, 1) > max) break;
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (len == 0) {
      out += '?';
      ++i;
    } else if (len == 1 && (c < 0x20 || c == 0x7f)) {
      out += ' ';
      ++i;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

absl::StatusOr<KeyVaultKeyBundle> ParseKeyBundle(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseObject(body));
  KeyVaultKeyBundle out;
  ASSIGN_OR_RETURN(const json* key, ReadObject(j, "", "key", Need::kRequired));
  ASSIGN_OR_RETURN(std::optional<std::string> kid, ReadString(*key, "key", "kid", Need::kRequired));
  out.kid = *kid;
  out.version = KeyVersionFromKid(out.kid);
  if (out.version.empty()) {
    return absl::InvalidArgumentError("field 'key.kid' is not a versioned Key Vault key id");
  }
  ASSIGN_OR_RETURN(const json* ops, Member(*key, "key", "key_ops", Need::kOptional));
  if (ops != nullptr) {
    if (!ops->is_array()) return WrongType("key", "key_ops", "an array");
    out.key_ops.emplace();
    for (const json& op : *ops) {
      if (!op.is_string()) return WrongType("key", "key_ops", "an array of strings");
      out.key_ops->push_back(op.get<std::string>());
    }
  }
  ASSIGN_OR_RETURN(const json* attrs, ReadObject(j, "", "attributes", Need::kRequired));
  ASSIGN_OR_RETURN(std::optional<bool> enabled,
                   ReadBool(*attrs, "attributes", "enabled", Need::kRequired));
  out.enabled = *enabled;
  ASSIGN_OR_RETURN(out.not_before, ReadInt(*attrs, "attributes", "nbf", Need::kOptional, 0,
                                           kMaxUnixSeconds, /*strings=*/false));
  ASSIGN_OR_RETURN(out.expires_at, ReadInt(*attrs, "attributes", "exp", Need::kOptional, 0,
                                           kMaxUnixSeconds, /*strings=*/false));
  ASSIGN_OR_RETURN(out.recovery_level,
                   ReadString(*attrs, "attributes", "recoveryLevel", Need::kOptional));
  return out;
}

absl::StatusOr<KeyVaultWrapResult> ParseWrapResult(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseObject(body));
  ASSIGN_OR_RETURN(std::optional<std::string> kid, ReadString(j, "", "kid", Need::kRequired));
  ASSIGN_OR_RETURN(std::optional<std::string> value, ReadString(j, "", "value", Need::kRequired));
  KeyVaultWrapResult out;
  out.kid = *kid;
  out.version = KeyVersionFromKid(out.kid);
  if (out.version.empty()) {
    return absl::InvalidArgumentError("field 'kid' is not a versioned Key Vault key id");
  }
  auto decoded = Base64Decode(*value);
  if (!decoded.ok() || decoded->empty()) {
    return absl::InvalidArgumentError("field 'value' is not non-empty base64url");
  }
  out.ciphertext = std::move(*decoded);
  return out;
}

absl::StatusOr<KeyVaultUnwrapResult> ParseUnwrapResult(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseObject(body));
  KeyVaultUnwrapResult out;
  absl::Status st = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<std::string> kid, ReadString(j, "", "kid", Need::kOptional));
    out.kid = kid.value_or("");
    auto it = j.find("value");
    if (it == j.end() || it->is_null()) {
      return absl::InvalidArgumentError("field 'value' is missing");
    }
    if (!it->is_string()) return WrongType("", "value", "a string");
    auto decoded = Base64Decode(it->get_ref<const std::string&>());
    if (!decoded.ok() || decoded->empty()) {
      return absl::InvalidArgumentError("field 'value' is not non-empty base64url");
    }
    out.plaintext = SecretBytes::FromView(*decoded);
    WipeString(*decoded);
    return absl::OkStatus();
  }();
  // The encoded key sits in the parsed document too: wipe it on every path.
  if (auto it = j.find("value"); it != j.end() && it->is_string()) {
    WipeString(it->get_ref<std::string&>());
  }
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<AzureErrorBody> ParseAzureError(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseObject(body));
  ASSIGN_OR_RETURN(const json* err, ReadObject(j, "", "error", Need::kRequired));
  AzureErrorBody out;
  ASSIGN_OR_RETURN(std::optional<std::string> code,
                   ReadString(*err, "error", "code", Need::kOptional));
  ASSIGN_OR_RETURN(std::optional<std::string> message,
                   ReadString(*err, "error", "message", Need::kOptional));
  ASSIGN_OR_RETURN(const json* inner, ReadObject(*err, "error", "innererror", Need::kOptional));
  out.code = code.value_or("");
  out.message = message.value_or("");
  if (inner != nullptr) {
    ASSIGN_OR_RETURN(std::optional<std::string> inner_code,
                     ReadString(*inner, "error.innererror", "code", Need::kOptional));
    out.inner_code = inner_code.value_or("");
  }
  return out;
}

absl::StatusOr<EntraTokenReply> ParseTokenReply(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseObject(body));
  EntraTokenReply out;
  absl::Status st = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<std::string> token,
                     ReadString(j, "", "access_token", Need::kRequired));
    // The token goes into an Authorization header: no spaces, line breaks or other controls.
    if (token->empty() || !VisibleAscii(*token)) {
      WipeString(*token);
      return absl::InvalidArgumentError("field 'access_token' is not a bearer token");
    }
    out.access_token = std::move(*token);
    ASSIGN_OR_RETURN(std::optional<std::string> type,
                     ReadString(j, "", "token_type", Need::kOptional));
    out.token_type = type.value_or("");
    ASSIGN_OR_RETURN(std::optional<int64_t> expires_in,
                     ReadInt(j, "", "expires_in", Need::kRequired, 0, kMaxTokenLifetime,
                             /*strings=*/true));
    out.expires_in = *expires_in;
    ASSIGN_OR_RETURN(out.expires_on, ReadInt(j, "", "expires_on", Need::kOptional, 0,
                                             kMaxUnixSeconds, /*strings=*/true));
    return absl::OkStatus();
  }();
  if (auto it = j.find("access_token"); it != j.end() && it->is_string()) {
    WipeString(it->get_ref<std::string&>());
  }
  if (!st.ok()) {
    WipeString(out.access_token);
    return st;
  }
  return out;
}

absl::StatusOr<EntraErrorReply> ParseEntraError(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseObject(body));
  EntraErrorReply out;
  ASSIGN_OR_RETURN(std::optional<std::string> error, ReadString(j, "", "error", Need::kOptional));
  ASSIGN_OR_RETURN(std::optional<std::string> description,
                   ReadString(j, "", "error_description", Need::kOptional));
  out.error = error.value_or("");
  out.error_description = description.value_or("");
  return out;
}

absl::StatusOr<ArmVaultReply> ParseArmVault(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseObject(body));
  ArmVaultReply out;
  ASSIGN_OR_RETURN(std::optional<std::string> location,
                   ReadString(j, "", "location", Need::kOptional));
  if (location) out.location = absl::AsciiStrToLower(*location);
  ASSIGN_OR_RETURN(const json* props, ReadObject(j, "", "properties", Need::kOptional));
  if (props != nullptr) {
    ASSIGN_OR_RETURN(out.purge_protection,
                     ReadBool(*props, "properties", "enablePurgeProtection", Need::kOptional));
  }
  return out;
}

}  // namespace keyward
