#include "util/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>

#include "absl/strings/str_cat.h"

namespace keyward {

std::string ErrnoText(int err) { return std::strerror(err); }

absl::Status WriteError(int err, std::string_view what) {
  std::string msg = absl::StrCat(std::string(what), ": ", ErrnoText(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError("disk full: " + msg);
  return absl::InternalError(msg);
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

absl::Status FsyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("open dir '", dir, "': ", ErrnoText(errno)));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("fsync dir '", dir, "': ", ErrnoText(err)));
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& dir, int mode) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create directory '", dir, "': ", ec.message()));
  chmod(dir.c_str(), static_cast<mode_t>(mode));
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view data, int mode) {
  // Unique: pid, the clock in ns and a counter. The clock matters: a crashed process's leftover
  // would otherwise block a restarted one given the same pid (common in containers). O_EXCL
  // refuses a name in use whatever happens.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = absl::StrCat(path, ".tmp-", getpid(), "-",
                                 std::chrono::system_clock::now().time_since_epoch().count(), "-",
                                 counter.fetch_add(1));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return WriteError(errno, absl::StrCat("create '", tmp, "'"));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return WriteError(err, absl::StrCat("write '", tmp, "'"));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return WriteError(err, absl::StrCat("fsync '", tmp, "'"));
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("rename to '", path, "': ", ErrnoText(err)));
  }
  return FsyncDirectory(DirName(path));
}

absl::Status ReadFileInto(const std::string& path, size_t max_size,
                          const std::function<char*(size_t)>& sink) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat("'", path, "' does not exist"));
    return absl::InternalError(absl::StrCat("open '", path, "': ", ErrnoText(err)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) > max_size) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is larger than the ", max_size, " bytes allowed"));
  }
  size_t size = static_cast<size_t>(st.st_size);
  char* dest = sink(size);
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, dest + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  if (done != size) return absl::DataLossError(absl::StrCat("short read of '", path, "'"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path, size_t max_size) {
  std::string out;
  absl::Status st = ReadFileInto(path, max_size, [&](size_t n) {
    out.resize(n);
    return out.data();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::vector<std::string>> ListDirAt(int fd, const std::string& path) {
  int list_fd = dup(fd);
  DIR* d = list_fd >= 0 ? fdopendir(list_fd) : nullptr;
  if (d == nullptr) {
    const int err = errno;
    if (list_fd >= 0) close(list_fd);
    return absl::InternalError(absl::StrCat("cannot list ", path, ": ", std::strerror(err)));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  closedir(d);
  return names;
}

}  // namespace keyward
