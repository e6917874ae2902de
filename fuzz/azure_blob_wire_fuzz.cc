// Arbitrary bytes as the Azure Blob replies a backup reads (List Blobs pages, Get Block List of
// both sections, error bodies) and as names to percent-encode: every outcome must be a Status,
// never an exception, a crash or an out-of-bounds read, and what a reply that parses yields stays
// inside the bounds the destination relies on (a page holds at most 5000 names of at most
// 1024 bytes; an error code is a short identifier, never the service's text).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "backup/azure_blob_wire.h"

namespace {

bool Unreserved(unsigned char c, bool keep_slash) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
}

bool IsUpperHex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

// Only unreserved characters and %XX escapes, whatever went in.
void CheckEncoded(std::string_view in, bool keep_slash) {
  std::string out = keyward::BlobPercentEncode(in, keep_slash);
  size_t decoded = 0;
  for (size_t i = 0; i < out.size(); ++decoded) {
    unsigned char c = static_cast<unsigned char>(out[i]);
    if (c == '%') {
      if (i + 2 >= out.size() || !IsUpperHex(out[i + 1]) || !IsUpperHex(out[i + 2])) {
        __builtin_trap();
      }
      i += 3;
    } else {
      if (!Unreserved(c, keep_slash)) __builtin_trap();
      ++i;
    }
  }
  if (decoded != in.size()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view xml(reinterpret_cast<const char*>(data), size);
  if (auto page = keyward::ParseBlobList(xml); page.ok()) {
    if (page->names.size() > 5000 || page->next_marker.size() > 4096) __builtin_trap();
    for (const auto& name : page->names) {
      if (name.empty() || name.size() > 1024) __builtin_trap();
    }
  }
  for (std::string_view section : {"UncommittedBlocks", "CommittedBlocks"}) {
    if (auto blocks = keyward::ParseBlockList(xml, section); blocks.ok()) {
      if (blocks->size() > 50000) __builtin_trap();
      for (const auto& [id, n] : *blocks) {
        if (id.size() > 256) __builtin_trap();
      }
    }
  }
  std::string code = keyward::BlobErrorCode({}, xml);
  if (code.size() > 100) __builtin_trap();
  for (char c : code) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      __builtin_trap();
    }
  }
  // The header wins over the body, and gets the same check.
  std::string header_code = keyward::BlobErrorCode({{"x-ms-error-code", std::string(xml)}}, "");
  if (header_code.size() > 100) __builtin_trap();
  if (size <= 4096) {
    CheckEncoded(xml, false);
    CheckEncoded(xml, true);
  }
  return 0;
}
