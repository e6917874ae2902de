#include "util/bytes.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace keyward {

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void PutLengthPrefixed(std::string* out, std::string_view bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out->append(bytes);
}

absl::StatusOr<uint32_t> ByteReader::U32() {
  if (remaining() < 4) return absl::DataLossError("record ends early (wanted 4 bytes)");
  uint32_t v = GetU32(data_.data() + pos_);
  pos_ += 4;
  return v;
}

absl::StatusOr<uint64_t> ByteReader::U64() {
  if (remaining() < 8) return absl::DataLossError("record ends early (wanted 8 bytes)");
  uint64_t v = GetU64(data_.data() + pos_);
  pos_ += 8;
  return v;
}

absl::StatusOr<std::string_view> ByteReader::Bytes(size_t n) {
  if (remaining() < n) {
    return absl::DataLossError(absl::StrCat("record ends early (wanted ", n, " bytes)"));
  }
  std::string_view v = data_.substr(pos_, n);
  pos_ += n;
  return v;
}

absl::StatusOr<std::string_view> ByteReader::LengthPrefixed(size_t max_len) {
  auto len = U32();
  if (!len.ok()) return len.status();
  if (*len > max_len) {
    return absl::DataLossError(absl::StrCat("field length ", *len, " exceeds limit ", max_len));
  }
  return Bytes(*len);
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

absl::StatusOr<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return absl::InvalidArgumentError("hex string has odd length");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("hex string has a non-hex character");
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

}  // namespace keyward
