#include "backup/azure_blob_wire.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "crypto/sha256.h"
#include "util/base64.h"

namespace keyward {
namespace {

// Replies are bounded by the HTTP client's cap; these bound what one reply may make us build.
constexpr size_t kMaxNamesPerPage = 5000;
constexpr size_t kMaxNameBytes = 1024;
constexpr size_t kMaxBlocks = 50000;  // the service's limit per blob

bool Unreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// XML character data → text: the five predefined entities and numeric references.
absl::StatusOr<std::string> XmlUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      if (s[i] == '<') return absl::InvalidArgumentError("unexpected '<' in XML text");
      out.push_back(s[i]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      return absl::InvalidArgumentError("unterminated XML entity");
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out.push_back('&');
    } else if (ent == "lt") {
      out.push_back('<');
    } else if (ent == "gt") {
      out.push_back('>');
    } else if (ent == "quot") {
      out.push_back('"');
    } else if (ent == "apos") {
      out.push_back('\'');
    } else if (ent.size() > 1 && ent[0] == '#') {
      uint32_t cp = 0;
      bool ok = ent[1] == 'x' ? absl::SimpleHexAtoi(std::string(ent.substr(2)), &cp)
                              : absl::SimpleAtoi(std::string(ent.substr(1)), &cp);
      if (!ok || cp == 0 || cp > 0x10FFFF) {
        return absl::InvalidArgumentError("bad XML character reference");
      }
      AppendUtf8(cp, &out);
    } else {
      return absl::InvalidArgumentError("unknown XML entity");
    }
    i = semi;
  }
  return out;
}

// The text of the first element `tag` in xml[from, to): "<tag>text</tag>", "<tag attr=…>text</tag>"
// or an empty "<tag/>" / "<tag />". nullopt when absent. *end is set past the element.
absl::StatusOr<std::optional<std::string>> ElementText(std::string_view xml,
                                                       std::string_view tag_view, size_t from,
                                                       size_t to, size_t* end = nullptr) {
  const std::string tag(tag_view);
  std::string open = absl::StrCat("<", tag);
  for (size_t at = xml.find(open, from); at != std::string_view::npos && at < to;
       at = xml.find(open, at + 1)) {
    size_t after = at + open.size();
    if (after >= to) break;
    char next = xml[after];
    if (next != '>' && next != ' ' && next != '/') continue;  // "<Blobs>" is not "<Blob>"
    size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos || gt >= to) break;
    if (xml[gt - 1] == '/') {
      if (end) *end = gt + 1;
      return std::optional<std::string>(std::string());
    }
    std::string close = absl::StrCat("</", tag, ">");
    size_t stop = xml.find(close, gt + 1);
    if (stop == std::string_view::npos || stop >= to) {
      return absl::InvalidArgumentError(absl::StrCat("<", tag, "> is not closed"));
    }
    if (end) *end = stop + close.size();
    return std::optional<std::string>(std::string(xml.substr(gt + 1, stop - gt - 1)));
  }
  return std::optional<std::string>();
}

// [start, end) of each element `tag` (its inner text) inside xml[from, to).
absl::StatusOr<std::vector<std::pair<size_t, size_t>>> Elements(std::string_view xml,
                                                                std::string_view tag_view,
                                                                size_t from, size_t to,
                                                                size_t max) {
  const std::string tag(tag_view);
  std::vector<std::pair<size_t, size_t>> out;
  std::string open = absl::StrCat("<", tag, ">");
  std::string close = absl::StrCat("</", tag, ">");
  for (size_t at = xml.find(open, from); at != std::string_view::npos && at < to;) {
    size_t stop = xml.find(close, at + open.size());
    if (stop == std::string_view::npos || stop >= to) {
      return absl::InvalidArgumentError(absl::StrCat("<", tag, "> is not closed"));
    }
    if (out.size() == max) {
      return absl::InvalidArgumentError(absl::StrCat("more than ", max, " <", tag, "> elements"));
    }
    out.emplace_back(at + open.size(), stop);
    at = xml.find(open, stop + close.size());
  }
  return out;
}

}  // namespace

std::string BlobPercentEncode(std::string_view s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if (Unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

std::string BlobQueryString(const BlobQuery& query) {
  std::string out;
  for (const auto& [k, v] : query) {
    absl::StrAppend(&out, out.empty() ? "?" : "&", BlobPercentEncode(k, false), "=",
                    BlobPercentEncode(v, false));
  }
  return out;
}

std::string SharedKeyStringToSign(std::string_view method,
                                  const std::map<std::string, std::string>& headers,
                                  std::string_view account, std::string_view url_path,
                                  const BlobQuery& query) {
  auto header = [&](const char* name) -> std::string {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  };
  std::string length = header("content-length");
  if (length == "0") length.clear();
  std::string out = absl::StrCat(
      std::string(method), "\n", header("content-encoding"), "\n", header("content-language"), "\n",
      length, "\n", header("content-md5"), "\n", header("content-type"), "\n", header("date"), "\n",
      header("if-modified-since"), "\n", header("if-match"), "\n", header("if-none-match"), "\n",
      header("if-unmodified-since"), "\n", header("range"), "\n");
  // std::map: the x-ms-* names come sorted.
  for (const auto& [name, value] : headers) {
    if (name.rfind("x-ms-", 0) == 0) {
      absl::StrAppend(&out, name, ":", absl::StripAsciiWhitespace(value), "\n");
    }
  }
  absl::StrAppend(&out, "/", std::string(account), std::string(url_path));
  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [k, v] : query) params[absl::AsciiStrToLower(k)].push_back(v);
  for (auto& [k, values] : params) {
    std::sort(values.begin(), values.end());
    absl::StrAppend(&out, "\n", k, ":", absl::StrJoin(values, ","));
  }
  return out;
}

std::string SharedKeyAuthorization(std::string_view account, std::string_view key,
                                   std::string_view string_to_sign) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(string_to_sign.data()), string_to_sign.size(), mac,
       &mac_len);
  return absl::StrCat("SharedKey ", std::string(account), ":",
                      Base64Encode(std::string_view(reinterpret_cast<const char*>(mac), mac_len)));
}

std::string BlobHttpDate(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

absl::StatusOr<BlobListPage> ParseBlobList(std::string_view xml) {
  if (xml.find("<EnumerationResults") == std::string_view::npos) {
    return absl::InvalidArgumentError("the reply is not a List Blobs result");
  }
  BlobListPage page;
  size_t blobs_end = xml.size();
  size_t blobs_start = xml.find("<Blobs>");
  if (blobs_start == std::string_view::npos) {
    // "<Blobs />": an empty page.
    blobs_start = blobs_end = 0;
  } else {
    blobs_end = xml.find("</Blobs>", blobs_start);
    if (blobs_end == std::string_view::npos) {
      return absl::InvalidArgumentError("<Blobs> is not closed");
    }
  }
  auto blobs = Elements(xml, "Blob", blobs_start, blobs_end, kMaxNamesPerPage);
  if (!blobs.ok()) return blobs.status();
  for (auto [from, to] : *blobs) {
    auto name = ElementText(xml, "Name", from, to);
    if (!name.ok()) return name.status();
    if (!name->has_value() || (*name)->empty() || (*name)->size() > kMaxNameBytes * 6) {
      return absl::InvalidArgumentError("a <Blob> without a usable <Name>");
    }
    auto text = XmlUnescape(**name);
    if (!text.ok()) return text.status();
    if (text->size() > kMaxNameBytes) return absl::InvalidArgumentError("a blob name is too long");
    page.names.push_back(std::move(*text));
  }
  // NextMarker sits after </Blobs>.
  auto marker = ElementText(xml, "NextMarker", blobs_end, xml.size());
  if (!marker.ok()) return marker.status();
  if (marker->has_value()) {
    auto text = XmlUnescape(**marker);
    if (!text.ok()) return text.status();
    if (text->size() > 4096) return absl::InvalidArgumentError("NextMarker is too long");
    page.next_marker = std::move(*text);
  }
  return page;
}

absl::StatusOr<std::map<std::string, uint64_t>> ParseBlockList(std::string_view xml,
                                                               std::string_view section) {
  if (xml.find("<BlockList") == std::string_view::npos) {
    return absl::InvalidArgumentError("the reply is not a Get Block List result");
  }
  std::map<std::string, uint64_t> out;
  size_t end = 0;
  auto body = ElementText(xml, section, 0, xml.size(), &end);
  if (!body.ok()) return body.status();
  if (!body->has_value()) return out;
  size_t from = xml.find(absl::StrCat("<", std::string(section)));
  auto blocks = Elements(xml, "Block", from, end, kMaxBlocks);
  if (!blocks.ok()) return blocks.status();
  for (auto [b, e] : *blocks) {
    auto name = ElementText(xml, "Name", b, e);
    auto size = ElementText(xml, "Size", b, e);
    if (!name.ok()) return name.status();
    if (!size.ok()) return size.status();
    uint64_t n = 0;
    if (!name->has_value() || !size->has_value() || !absl::SimpleAtoi(**size, &n) ||
        (*name)->size() > 256) {
      return absl::InvalidArgumentError("a <Block> without a usable <Name> and <Size>");
    }
    auto id = XmlUnescape(**name);
    if (!id.ok()) return id.status();
    out[*id] = n;
  }
  return out;
}

std::string BlockListXml(const std::vector<std::string>& ids) {
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
  // Base64 ids hold no character XML needs escaped.
  for (const auto& id : ids) absl::StrAppend(&out, "<Latest>", id, "</Latest>");
  out += "</BlockList>";
  return out;
}

std::string BlockIdFor(uint32_t index, std::string_view data) {
  return Base64Encode(absl::StrFormat("%06u-%s", index, Sha256Hex(data).substr(0, 32)));
}

std::string BlobErrorCode(const std::map<std::string, std::string>& headers,
                          std::string_view body) {
  std::string c;
  auto it = headers.find("x-ms-error-code");
  if (it != headers.end() && !it->second.empty()) {
    c = it->second;
  } else if (auto code = ElementText(body, "Code", 0, body.size());
             code.ok() && code->has_value()) {
    c = **code;
  }
  // A code is an identifier; anything else is not repeated.
  if (c.size() > 100 || !std::all_of(c.begin(), c.end(), [](char ch) {
        return absl::ascii_isalnum(static_cast<unsigned char>(ch));
      })) {
    return "";
  }
  return c;
}

}  // namespace keyward
