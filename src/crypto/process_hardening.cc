#include "crypto/process_hardening.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "crypto/secret_arena.h"
#include "util/file_util.h"

namespace keyward {

absl::Status HardenProcess(bool allow_core_dumps) {
  umask(077);
  SetSecretMemoryDontDump(!allow_core_dumps);
  if (allow_core_dumps) return absl::OkStatus();
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot turn core dumps off (prctl PR_SET_DUMPABLE): ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> TightenDataDirModes(const std::string& dir) {
  namespace fs = std::filesystem;
  int changed = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    struct stat st {};
    if (lstat(it->path().c_str(), &st) != 0 || S_ISLNK(st.st_mode)) continue;
    // Another owner's (the account mariadbd runs as, mariadb/os_account.h): its own to manage,
    // and not to be walked as root, where it could swap a directory for a link mid-walk.
    if (st.st_uid != geteuid()) {
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    // A directory given to another group on purpose keeps its search bit (g+x) for that group:
    // the path to a mariadb cluster's files for the account mariadbd runs as.
    const mode_t keep = S_ISDIR(st.st_mode) && st.st_gid != getegid() ? 0710 : 0700;
    if ((st.st_mode & 077 & ~keep) == 0) continue;
    if (chmod(it->path().c_str(), st.st_mode & keep) != 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot make ", it->path().string(), " private (chmod go-rwx): ", ErrnoText(errno)));
    }
    ++changed;
  }
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot read ", dir, ": ", ec.message()));
  }
  return changed;
}

}  // namespace keyward
