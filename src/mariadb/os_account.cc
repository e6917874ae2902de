#include "mariadb/os_account.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/secret_bytes.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

std::string ModeText(mode_t mode) {
  char buf[8];
  snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Whether `account` may search (x) a directory with this stat, as the kernel decides it for a
// process with the account's uid, primary gid and no supplementary groups.
bool AccountCanSearch(const struct stat& st, const MariadbOsAccount& account) {
  if (st.st_uid == account.uid) return (st.st_mode & S_IXUSR) != 0;
  if (st.st_gid == account.gid) return (st.st_mode & S_IXGRP) != 0;
  return (st.st_mode & S_IXOTH) != 0;
}

// Chowns the directory open as `fd` (and, with `recursive`, its contents first: a directory
// owned by the account then implies a finished subtree) to the account. Never follows links:
// entries are opened relative to `fd` with O_NOFOLLOW and changed with AT_SYMLINK_NOFOLLOW.
absl::Status ChownTree(int fd, const std::string& path, const MariadbOsAccount& account,
                       bool recursive, int depth) {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("cannot stat ", path, ": ", ErrnoText(errno)));
  }
  if (recursive && st.st_uid != account.uid) {
    if (depth > 64) {
      return absl::FailedPreconditionError(absl::StrCat(path, " nests too deep to hand over"));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirAt(fd, path));
    for (const std::string& name : names) {
      const std::string child = absl::StrCat(path, "/", name);
      struct stat cst {};
      if (fstatat(fd, name.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
      if (S_ISDIR(cst.st_mode)) {
        int cfd = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
          return absl::InternalError(absl::StrCat("cannot open ", child, ": ", ErrnoText(errno)));
        }
        absl::Status s = ChownTree(cfd, child, account, true, depth + 1);
        close(cfd);
        if (!s.ok()) return s;
      } else if (cst.st_uid != account.uid || cst.st_gid != account.gid) {
        if (fchownat(fd, name.c_str(), account.uid, account.gid, AT_SYMLINK_NOFOLLOW) != 0) {
          return absl::PermissionDeniedError(absl::StrCat("cannot give ", child, " to user ",
                                                          account.name, ": ", ErrnoText(errno)));
        }
      }
    }
  }
  if ((st.st_uid != account.uid || st.st_gid != account.gid) &&
      fchown(fd, account.uid, account.gid) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot give ", path, " to user ", account.name, ": ", ErrnoText(errno)));
  }
  if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot make ", path, " 0700: ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MariadbOsAccount> ResolveMariadbAccount(const std::string& name) {
  MariadbOsAccount account;
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (geteuid() != 0) {
    account.uid = geteuid();
    account.gid = getegid();
    if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
      account.name = found->pw_name;
    }
    if (!name.empty() && name != account.name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mariadb-user ", name, " needs keyward serve to run as root; as user '", account.name,
          "' mariadbd runs as that user: drop the flag or start keyward as root"));
    }
    return account;
  }
  const std::string want = name.empty() ? kDefaultMariadbUser : name;
  int rc = getpwnam_r(want.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || found == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "the OS user '", want,
        "' that mariadbd runs as does not exist; create it (useradd --system --no-create-home "
        "--shell /usr/sbin/nologin ",
        want, ", as scripts/bootstrap does) or name another with --mariadb-user"));
  }
  if (found->pw_uid == 0 || found->pw_gid == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mariadb-user ", want,
                     " has uid or gid 0: mariadbd must not run with root's rights; use an "
                     "unprivileged system account"));
  }
  account.name = want;
  account.uid = found->pw_uid;
  account.gid = found->pw_gid;
  account.drop = true;
  return account;
}

int DropToAccountInChild(const MariadbOsAccount& account) {
  if (!account.drop) return 0;
  // Raw system calls: glibc's wrappers synchronise ids across threads (setxid), which a child
  // forked from a multi-threaded keyward must not rely on.
  if (syscall(SYS_setgroups, 0, nullptr) != 0) return errno;
  if (syscall(SYS_setresgid, account.gid, account.gid, account.gid) != 0) return errno;
  if (syscall(SYS_setresuid, account.uid, account.uid, account.uid) != 0) return errno;
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (syscall(SYS_getresuid, &ru, &eu, &su) != 0 || syscall(SYS_getresgid, &rg, &eg, &sg) != 0) {
    return errno;
  }
  if (ru != account.uid || eu != account.uid || su != account.uid || rg != account.gid ||
      eg != account.gid || sg != account.gid) {
    return EPERM;
  }
  // Root must be out of reach for good.
  if (syscall(SYS_setresuid, 0, 0, 0) == 0) return EPERM;
  return 0;
}

absl::Status GiveDirToAccount(const std::string& dir, const MariadbOsAccount& account,
                              bool recursive) {
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return s;
  if (!account.drop) return absl::OkStatus();
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", dir, ": ", ErrnoText(errno)));
  }
  absl::Status s = ChownTree(fd, dir, account, recursive, 0);
  close(fd);
  return s;
}

absl::Status LetAccountReach(const std::string& top, const std::string& dir,
                             const MariadbOsAccount& account) {
  if (!account.drop) return absl::OkStatus();
  if (dir != top && dir.rfind(top + "/", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(dir, " is not inside ", top));
  }
  // From `dir` up to `top`: keyward's own directories, opened without following links.
  for (std::string d = dir;; d = DirName(d)) {
    int fd = open(d.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return absl::InternalError(absl::StrCat("cannot open ", d, ": ", ErrnoText(errno)));
    }
    struct stat st {};
    int rc = fstat(fd, &st);
    if (rc == 0 && st.st_gid != account.gid) rc = fchown(fd, static_cast<uid_t>(-1), account.gid);
    const mode_t want = (st.st_mode & 0700) | S_IXGRP;
    if (rc == 0 && (st.st_mode & 07777) != want) rc = fchmod(fd, want);
    int err = errno;
    close(fd);
    if (rc != 0) {
      return absl::PermissionDeniedError(absl::StrCat("cannot let user ", account.name, " search ",
                                                      d, " (chgrp, chmod g+x): ", ErrnoText(err)));
    }
    if (d == top || d.size() <= 1 || d == ".") break;
  }
  // Above `top`: not keyward's to change; say which one blocks and how to open it.
  for (std::string d = DirName(top); !d.empty() && d != "."; d = DirName(d)) {
    struct stat st {};
    if (stat(d.c_str(), &st) != 0) {
      return absl::InternalError(absl::StrCat("cannot stat ", d, ": ", ErrnoText(errno)));
    }
    if (!AccountCanSearch(st, account)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "mariadbd runs as user ", account.name, ", which cannot reach the data directory: ", d,
          " (mode ", ModeText(st.st_mode), ", owner uid ", st.st_uid,
          ") is not searchable for it; allow it (chmod o+x ", d,
          ") or put --data-dir somewhere it can reach"));
    }
    if (d == "/") break;
  }
  return absl::OkStatus();
}

absl::Status CheckAccountCanRead(const std::string& path, const MariadbOsAccount& account) {
  if (!account.drop) return absl::OkStatus();
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot stat ", path, ": ", ErrnoText(errno)));
  }
  const bool readable = st.st_uid == account.uid   ? (st.st_mode & S_IRUSR) != 0
                        : st.st_gid == account.gid ? (st.st_mode & S_IRGRP) != 0
                                                   : (st.st_mode & S_IROTH) != 0;
  if (!readable) {
    return absl::FailedPreconditionError(absl::StrCat("mariadbd runs as user ", account.name,
                                                      ", which cannot read ", path, " (mode ",
                                                      ModeText(st.st_mode), "): chmod o+r it"));
  }
  for (std::string d = DirName(path); !d.empty() && d != "."; d = DirName(d)) {
    if (stat(d.c_str(), &st) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("cannot stat ", d, ": ", ErrnoText(errno)));
    }
    if (!AccountCanSearch(st, account)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "mariadbd runs as user ", account.name, ", which cannot reach ", path, ": ", d, " (mode ",
          ModeText(st.st_mode), ") is not searchable for it (chmod o+x ", d, ")"));
    }
    if (d == "/") break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ShareFileWithAccount(const std::string& src, const std::string& dst,
                                                 const MariadbOsAccount& account) {
  if (!account.drop) return src;
  absl::StatusOr<std::string> text = ReadFileToString(src, 1 << 20);
  if (!text.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", src, " for mariadbd: ", text.status().message()));
  }
  absl::Status written = WriteFileAtomically(dst, *text, 0600);
  WipeString(*text);  // it may be a private key
  if (!written.ok()) return written;
  // Group and mode after the write: keyward's umask (077) strips group bits at creation.
  if (chown(dst.c_str(), geteuid(), account.gid) != 0 || chmod(dst.c_str(), 0640) != 0) {
    int err = errno;
    unlink(dst.c_str());
    return absl::PermissionDeniedError(
        absl::StrCat("cannot let user ", account.name, " read ", dst, ": ", ErrnoText(err)));
  }
  return dst;
}

}  // namespace keyward
