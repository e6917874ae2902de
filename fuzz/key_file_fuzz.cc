// Arbitrary bytes as a key dictionary file, a file encryption header and a wrapped-key record:
// every outcome must be a Status, never a crash or an out-of-bounds read. The dictionary and the
// header each carry a SHA-256 checksum, which random bytes never match: each is also parsed with
// the input placed behind a valid magic and a recomputed checksum, so the field parsers behind the
// check are what gets fuzzed.
#include <cstddef>
#include <cstdint>
#include <string>

#include "crypto/sha256.h"
#include "kms/master_key_provider.h"
#include "storage/encryption_provider.h"
#include "storage/key_dictionary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string_view body, header;
  (void)keyward::KeyDictionary::ParseEnvelope(bytes, &body, &header);
  (void)keyward::ParseFileHeader(bytes);
  (void)keyward::WrappedKey::Parse(bytes);

  // key_dictionary.h: "KWKDICT1" | version, wrapped key, sealed body ... | SHA-256 of all before.
  std::string dict = "KWKDICT1";
  dict.append(bytes);
  dict.append(keyward::Sha256(dict));
  (void)keyward::KeyDictionary::ParseEnvelope(dict, &body, &header);

  // encryption_provider.cc: "KWENCF01" | u32 version | u32 key id | 16 IV | 8 of SHA-256(first 32).
  std::string file_header = "KWENCF01";
  file_header.append(bytes.substr(0, 24));
  file_header.resize(32, '\0');
  file_header.append(keyward::Sha256(file_header).substr(0, 8));
  (void)keyward::ParseFileHeader(file_header);
  return 0;
}
