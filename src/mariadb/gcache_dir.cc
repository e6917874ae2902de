#include "mariadb/gcache_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

bool OwnedByUs(const struct stat& st, const MariadbOsAccount& account) {
  return st.st_uid == geteuid() || (account.drop && st.st_uid == account.uid);
}

// Empties the directory open as `fd` (named `path` in errors), then nothing else: entries are
// reached relative to `fd` and subdirectories opened with O_NOFOLLOW, so a link inside (or one
// swapped in meanwhile) is unlinked, never followed.
absl::Status EmptyDirAt(int fd, const std::string& path, int depth) {
  if (depth > 64) {
    return absl::FailedPreconditionError(absl::StrCat(path, " nests too deep to remove"));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirAt(fd, path));
  for (const std::string& name : names) {
    const std::string child = absl::StrCat(path, "/", name);
    if (unlinkat(fd, name.c_str(), 0) == 0 || errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) {
      return absl::InternalError(absl::StrCat("cannot remove ", child, ": ", ErrnoText(errno)));
    }
    int cfd = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) {
      return absl::InternalError(absl::StrCat("cannot open ", child, ": ", ErrnoText(errno)));
    }
    absl::Status st = EmptyDirAt(cfd, child, depth + 1);
    close(cfd);
    if (!st.ok()) return st;
    if (unlinkat(fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return absl::InternalError(absl::StrCat("cannot remove ", child, ": ", ErrnoText(errno)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RemoveOwnDir(const std::string& path, const MariadbOsAccount& account) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("cannot stat ", path, ": ", ErrnoText(errno)));
  }
  if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode) || !OwnedByUs(st, account)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " exists and is ",
        S_ISLNK(st.st_mode)    ? "a symbolic link"
        : !S_ISDIR(st.st_mode) ? "not a directory"
                               : absl::StrCat("a directory of uid ", st.st_uid),
        ", not keyward's: another user may have made it to collect Galera's write sets; it is "
        "not used — inspect it and remove it (its owner or root), then resume the cluster"));
  }
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", ErrnoText(errno)));
  }
  // The directory opened must be the one checked (not swapped between lstat and open).
  struct stat opened {};
  absl::Status result = absl::OkStatus();
  if (fstat(fd, &opened) != 0 || opened.st_dev != st.st_dev || opened.st_ino != st.st_ino) {
    result = absl::FailedPreconditionError(
        absl::StrCat(path, " changed while keyward checked it; try again"));
  } else {
    result = EmptyDirAt(fd, path, 0);
  }
  close(fd);
  if (!result.ok()) return result;
  if (rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("cannot remove ", path, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

absl::Status MakeFreshPrivateDir(const std::string& path, const MariadbOsAccount& account) {
  if (absl::Status st = RemoveOwnDir(path, account); !st.ok()) return st;
  // Not -p and not "exists is fine": whatever appears meanwhile is refused.
  if (mkdir(path.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", path, ": ", ErrnoText(errno),
        errno == EEXIST ? " (another process made it meanwhile; inspect and remove it)" : ""));
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
      (st.st_mode & 07777) != 0700) {
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        " is not the private directory keyward just made (owner, type or mode differ); "
        "inspect and remove it"));
  }
  return absl::OkStatus();
}

void RemoveGaleraGcaches(const std::string& cluster_id, const MariadbOsAccount& account) {
  // Node names as GaleraGcacheDir makes them (kw-<id>-n<i>); 3 is the most nodes a cluster has.
  for (int i = 0; i < 3; ++i) {
    const std::string dir = absl::StrCat(kGaleraGcacheRoot, "/kw-", cluster_id, "-n", i);
    if (absl::Status st = RemoveOwnDir(dir, account); !st.ok()) {
      LogWarn("mariadb.gcache_not_removed", std::string(st.message()),
              {{"cluster_id", cluster_id}});
    }
  }
}

}  // namespace keyward
