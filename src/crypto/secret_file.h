#pragma once
// Files holding key material, read straight into wiped memory (SecretBytes), never through an
// ordinary string that would leave a copy on the heap.

#include <string>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace keyward {

absl::StatusOr<SecretBytes> ReadSecretFile(const std::string& path, size_t max_size);

}  // namespace keyward
