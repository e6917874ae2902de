#include "backup/backup_destination.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/random.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

constexpr size_t kMaxObjectBytes = 256 << 20;

bool SafeSegment(absl::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.substr(0, 4) == ".tmp") return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
  });
}

// WriteFileAtomically (util/file_util.h) without any fsync: temp name, write, rename; the
// kernel is told to start writing the data back now (SYNC_FILE_RANGE_WRITE does not wait), so
// the one sync at the end finds little left to write. Until that sync a crash may leave the
// object absent or damaged — never mistaken for a good one: a backup's manifest is written only
// after the sync, and a chunk that is not whole fails its AEAD tag.
absl::Status WriteFileUnsynced(const std::string& path, std::string_view data) {
  ASSIGN_OR_RETURN(std::string suffix, RandomHex(6));
  std::string tmp = path + ".tmp-" + suffix;
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ENOENT) {  // a parent directory is missing: the caller makes them
    return absl::NotFoundError(absl::StrCat("create '", tmp, "': no such directory"));
  }
  if (fd < 0) return WriteError(errno, absl::StrCat("create '", tmp, "'"));
  size_t done = 0;
  int err = 0;
  while (done < data.size() && err == 0) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) err = n < 0 ? errno : EIO;
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (err == 0) sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);  // a hint: errors come later
  close(fd);
  if (err == 0 && rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    unlink(tmp.c_str());
    return WriteError(err, absl::StrCat("write '", path, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalDirectoryDestination>> LocalDirectoryDestination::New(
    const std::string& root) {
  if (root.empty()) return absl::InvalidArgumentError("--backup-dir must not be empty");
  RETURN_IF_ERROR(MakeDirs(root, 0700));
  std::error_code ec;
  std::string canonical = std::filesystem::canonical(root, ec).string();
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup directory ", root, " is unusable: ", ec.message()));
  }
  int fd = open(canonical.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup directory ", root, " is unusable: ", ErrnoText(errno)));
  }
  return std::unique_ptr<LocalDirectoryDestination>(new LocalDirectoryDestination(canonical, fd));
}

absl::StatusOr<std::string> LocalDirectoryDestination::PathFor(const std::string& name) const {
  for (absl::string_view seg : absl::StrSplit(name, '/')) {
    if (!SafeSegment(seg)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid backup object name '", name, "'"));
    }
  }
  return absl::StrCat(root_, "/", name);
}

absl::Status LocalDirectoryDestination::Put(const std::string& name, std::string_view data) {
  ASSIGN_OR_RETURN(std::string path, PathFor(name));
  RETURN_IF_ERROR(MakeParents(name));
  // Temp name, fsync, rename, fsync(dir): a crash leaves the object whole or absent; List skips
  // the ".tmp" leftovers, which the next delete of the backup removes.
  return WriteFileAtomically(path, data, 0600);
}

absl::Status LocalDirectoryDestination::PutDeferred(const std::string& name,
                                                    std::string_view data) {
  ASSIGN_OR_RETURN(std::string path, PathFor(name));
  // The parents exist but for the first object of a directory: made (the root too, when it was
  // removed) only when the write finds one missing, not with a stat and a chmod per level for
  // each of a backup's hundreds of chunks.
  absl::Status st = WriteFileUnsynced(path, data);
  if (!absl::IsNotFound(st)) return st;
  RETURN_IF_ERROR(MakeParents(name));
  return WriteFileUnsynced(path, data);
}

absl::Status LocalDirectoryDestination::SyncPuts() {
  // One syncfs for every deferred put (data, inodes, directory entries), like `sync` after a
  // copy: a backup writes hundreds of chunk objects, and an fsync each (then one per directory)
  // cost more than the encryption on a VM disk. Always called, even when another backup has
  // just synced: a put that finished after that sync began must be covered too, and a sync with
  // nothing to write is cheap. syncfs reports write-back errors (Linux 5.8+) on its descriptor,
  // opened when the destination was.
  std::lock_guard<std::mutex> syncing(sync_mu_);
  if (!sync_error_.ok()) return sync_error_;
  if (syncfs(sync_fd_) == 0) return absl::OkStatus();
  int err = errno;
  // Sticky: another backup's puts may have been hit by the error this call consumed, and its
  // own syncfs would not report it again.
  sync_error_ = absl::Status(
      WriteError(err, "").code(),
      absl::StrCat("writing backup objects to ", root_, " failed (", ErrnoText(err),
                   "); no backup there completes until the server restarts: check the disk"));
  return sync_error_;
}

LocalDirectoryDestination::~LocalDirectoryDestination() { close(sync_fd_); }

absl::Status LocalDirectoryDestination::MakeParents(const std::string& name) {
  // Each directory level made 0700 (MakeDirs sets the mode of the last level only).
  for (size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    RETURN_IF_ERROR(MakeDirs(absl::StrCat(root_, "/", name.substr(0, slash)), 0700));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LocalDirectoryDestination::Get(const std::string& name) {
  ASSIGN_OR_RETURN(std::string path, PathFor(name));
  if (access(path.c_str(), F_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("backup object ", name, " is missing from ", Describe()));
  }
  return ReadFileToString(path, kMaxObjectBytes);
}

absl::Status LocalDirectoryDestination::GetInto(const std::string& name, std::string* out) {
  ASSIGN_OR_RETURN(std::string path, PathFor(name));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("backup object ", name, " is missing from ", Describe()));
    }
    return absl::InternalError(absl::StrCat("cannot read ", path, ": ", ErrnoText(err)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) > kMaxObjectBytes) {
    close(fd);
    return absl::InternalError(absl::StrCat("cannot read ", path, ": unreadable or too large"));
  }
  size_t size = static_cast<size_t>(st.st_size);
  out->resize(size);  // no allocation once `out` has held an object this large
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, out->data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  if (done != size) return absl::DataLossError(absl::StrCat("short read of ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> LocalDirectoryDestination::List(
    const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  namespace fs = std::filesystem;
  // Only the directory the prefix names can hold matches: walk that one, not the whole root.
  std::string start = root_;
  if (auto slash = prefix.rfind('/'); slash != std::string::npos) {
    ASSIGN_OR_RETURN(start, PathFor(prefix.substr(0, slash)));
  }
  if (!fs::exists(start, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(start, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string rel = fs::relative(it->path(), root_, ec).string();
    if (ec) break;
    if (it->path().filename().string().find(".tmp-") != std::string::npos) continue;
    if (rel.compare(0, prefix.size(), prefix) == 0) out.push_back(rel);
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", start, ": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status LocalDirectoryDestination::Delete(const std::string& name) {
  ASSIGN_OR_RETURN(std::string path, PathFor(name));
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("cannot delete ", path, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

absl::Status LocalDirectoryDestination::DeleteAll(const std::string& dir) {
  if (dir.empty() || dir.back() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("'", dir, "' is not an object directory"));
  }
  ASSIGN_OR_RETURN(std::string path, PathFor(dir.substr(0, dir.size() - 1)));
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::OkStatus();  // nothing was ever put
  std::filesystem::remove_all(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot delete ", path, ": ", ec.message()));
  return FsyncDirectory(DirName(path));
}

}  // namespace keyward
