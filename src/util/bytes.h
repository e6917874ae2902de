#pragma once
// Little-endian fixed-width encoding helpers for on-disk formats, and hex/base64 text forms.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace keyward {

void PutU32(std::string* out, uint32_t v);
void PutU64(std::string* out, uint64_t v);
uint32_t GetU32(const char* p);
uint64_t GetU64(const char* p);

// Appends a u32 length then the bytes.
void PutLengthPrefixed(std::string* out, std::string_view bytes);

// Reads fields from a byte string without ever reading past its end.
class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}
  absl::StatusOr<uint32_t> U32();
  absl::StatusOr<uint64_t> U64();
  absl::StatusOr<std::string_view> Bytes(size_t n);
  absl::StatusOr<std::string_view> LengthPrefixed(size_t max_len);
  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

std::string HexEncode(std::string_view bytes);
absl::StatusOr<std::string> HexDecode(std::string_view hex);

}  // namespace keyward
