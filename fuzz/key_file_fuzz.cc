// Arbitrary bytes as a key dictionary file, a file encryption header and a wrapped-key record:
// every outcome must be a Status, never a crash or an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kms/master_key_provider.h"
#include "storage/encryption_provider.h"
#include "storage/key_dictionary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string_view body, header;
  (void)keyward::KeyDictionary::ParseEnvelope(bytes, &body, &header);
  (void)keyward::ParseFileHeader(bytes);
  (void)keyward::WrappedKey::Parse(bytes);
  // Also with a valid checksum, so the fuzzer gets past it to the field parser.
  if (size >= 8) {
    std::string file(bytes);
    file.replace(0, 8, "KWKDICT1");
    (void)keyward::KeyDictionary::ParseEnvelope(file, &body, &header);
  }
  return 0;
}
