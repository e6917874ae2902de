#include "util/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "util/file_util.h"

namespace keyward {
namespace {

// The holder writes its pid just after it takes the lock: a reader arriving in between sees an
// empty file, so it looks again for a moment.
std::string HolderPid(int fd) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    char buf[32] = {};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n > 0) {
      std::string pid(absl::StripAsciiWhitespace(std::string(buf, static_cast<size_t>(n))));
      if (!pid.empty()) return pid;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "unknown";
}

}  // namespace

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(const std::string& data_dir) {
  std::string path = data_dir + "/keyward.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open the data directory's lock file ", path, ": ", ErrnoText(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK) {
      std::string pid = HolderPid(fd);
      close(fd);
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", data_dir, " is in use by another keyward server (pid ", pid, ", lock ",
          path, "); stop that server first, or give this one its own --data-dir"));
    }
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot lock ", path, ": ", ErrnoText(err)));
  }
  std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", ErrnoText(err)));
  }
  fchmod(fd, 0600);
  return std::unique_ptr<DataDirLock>(new DataDirLock(std::move(path), fd));
}

DataDirLock::~DataDirLock() { close(fd_); }

}  // namespace keyward
