#include "kms/master_key_provider.h"
#include "util/bytes.h"
#include "util/status_macros.h"

namespace keyward {
namespace {
constexpr size_t kMaxField = 64 * 1024;
}

std::string WrappedKey::Serialize() const {
  std::string out;
  for (const std::string* field : {&provider, &key_id, &key_version, &algorithm, &ciphertext}) {
    PutLengthPrefixed(&out, *field);
  }
  return out;
}

absl::StatusOr<WrappedKey> WrappedKey::Parse(std::string_view bytes) {
  ByteReader r(bytes);
  WrappedKey w;
  for (std::string* field : {&w.provider, &w.key_id, &w.key_version, &w.algorithm, &w.ciphertext}) {
    ASSIGN_OR_RETURN(std::string_view v, r.LengthPrefixed(kMaxField));
    field->assign(v);
  }
  if (r.remaining() != 0) return absl::DataLossError("wrapped-key record has trailing bytes");
  return w;
}

}  // namespace keyward
