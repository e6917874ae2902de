#include "crypto/secret_file.h"

#include "util/file_util.h"

namespace keyward {

absl::StatusOr<SecretBytes> ReadSecretFile(const std::string& path, size_t max_size) {
  SecretBytes out;
  absl::Status st = ReadFileInto(path, max_size, [&](size_t n) {
    out = SecretBytes(n);
    return reinterpret_cast<char*>(out.data());
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace keyward
