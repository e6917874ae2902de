// Arbitrary bytes as a request on the MariaDB key socket (mariadb/key_protocol_wire.h): every
// outcome is a Status, and a request that parses encodes back to the same bytes. Each parsed
// request is also answered from a dictionary, so the answer path (version mapping, unknown
// versions, HKDF) runs on fuzzed key ids and versions.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "kms/escrow/escrow_provider.h"
#include "mariadb/key_service.h"

namespace {

keyward::KeyDictionary* Dictionary() {
  static keyward::KeyDictionary* dict = [] {
    char dir[] = "/tmp/kw-mkfuzz-XXXXXX";
    if (mkdtemp(dir) == nullptr) abort();
    auto escrow = keyward::EscrowProvider::LoadOrCreate(std::string(dir) + "/escrow.key");
    if (!escrow.ok()) abort();
    static std::unique_ptr<keyward::EscrowProvider> provider = *std::move(escrow);
    auto d =
        keyward::KeyDictionary::Create(std::string(dir) + "/keys.dict", "c-fuzz", *provider, 1000);
    if (!d.ok() || !(*d)->AddDataKey(2000).ok()) abort();
    // Held in memory from here on: nothing left in /tmp.
    unlink((std::string(dir) + "/keys.dict").c_str());
    unlink((std::string(dir) + "/escrow.key").c_str());
    rmdir(dir);
    return d->release();
  }();
  return dict;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto request = keyward::ParseMariadbKeyRequest(bytes);
  if (!request.ok()) return 0;
  if (keyward::EncodeMariadbKeyRequest(*request) != bytes) abort();
  keyward::SecretBytes answer = keyward::AnswerMariadbKeyRequest(*request, *Dictionary());
  if (answer.size() < 16) abort();
  return 0;
}
