#include "kms/escrow/escrow_provider.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "crypto/aes_gcm.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/bytes.h"
#include "crypto/secret_file.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {
constexpr char kAlgorithm[] = "A256GCM";
constexpr size_t kKeySize = 32;
}  // namespace

EscrowProvider::EscrowProvider(SecretBytes key, std::string path)
    : key_(std::move(key)), path_(std::move(path)) {
  key_id_ = "escrow-" + HexEncode(Sha256(key_.view()).substr(0, 8));
}

absl::StatusOr<std::unique_ptr<EscrowProvider>> EscrowProvider::Load(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("escrow key file '", path, "' does not exist"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("escrow key file '", path, "' is accessible to other users (mode ",
                     absl::StrFormat("%04o", st.st_mode & 0777), "); run: chmod 600 '", path, "'"));
  }
  ASSIGN_OR_RETURN(SecretBytes key, ReadSecretFile(path, kKeySize + 1));
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(absl::StrCat("escrow key file '", path,
                                                   "' must hold exactly ", kKeySize,
                                                   " bytes, it holds ", key.size()));
  }
  return std::unique_ptr<EscrowProvider>(new EscrowProvider(std::move(key), path));
}

absl::StatusOr<std::unique_ptr<EscrowProvider>> EscrowProvider::LoadOrCreate(
    const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    ASSIGN_OR_RETURN(SecretBytes key, RandomSecret(kKeySize));
    RETURN_IF_ERROR(WriteFileAtomically(path, key.view(), 0600));
  }
  return Load(path);
}

absl::StatusOr<WrappedKey> EscrowProvider::Wrap(const SecretBytes& plaintext,
                                                std::string_view context) {
  WrappedKey w;
  w.provider = "escrow";
  w.key_id = key_id_;
  w.key_version = "1";
  w.algorithm = kAlgorithm;
  ASSIGN_OR_RETURN(w.ciphertext, GcmSeal(key_, plaintext.view(), context));
  return w;
}

absl::StatusOr<SecretBytes> EscrowProvider::Unwrap(const WrappedKey& wrapped,
                                                   std::string_view context) {
  if (wrapped.provider != "escrow") {
    return absl::FailedPreconditionError(
        absl::StrCat("key was wrapped by provider '", wrapped.provider, "', not by escrow"));
  }
  if (wrapped.key_id != key_id_) {
    return absl::PermissionDeniedError(
        absl::StrCat("key was wrapped under escrow key ", wrapped.key_id,
                     " but this server's escrow key (", path_, ") is ", key_id_,
                     "; start keyward with --escrow-key-file pointing at the original"));
  }
  if (wrapped.algorithm != kAlgorithm) {
    return absl::InvalidArgumentError(
        absl::StrCat("escrow cannot unwrap algorithm '", wrapped.algorithm, "'"));
  }
  auto plain = GcmOpen(key_, wrapped.ciphertext, context);
  if (!plain.ok()) {
    return absl::PermissionDeniedError(
        "escrow unwrap failed: the wrapped key belongs to another cluster or was altered");
  }
  return plain;
}

absl::StatusOr<KeyDescription> EscrowProvider::Describe() {
  KeyDescription d;
  d.key_id = key_id_;
  d.key_version = "1";
  d.enabled = true;
  d.can_wrap = true;  // a local AES-GCM key: both operations always
  return d;
}

}  // namespace keyward
