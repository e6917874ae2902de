#pragma once
// One server per data directory. Two servers on one data dir each mark the other's clusters
// inaccessible in the shared metadata and can delete a cluster the other still serves, so
// `keyward serve` takes an exclusive flock on DIR/keyward.lock before it opens anything else and
// holds it for its lifetime; the holder's pid is written into the file so a second server can
// name it. The kernel drops the lock when the holder exits, however it exits (kill -9 included),
// so a stale file never blocks a restart. The file is never deleted: unlinking a lock file races
// with a server that has just opened it.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace keyward {

class DataDirLock {
 public:
  // Without waiting: FailedPrecondition naming the directory and the holder's pid when another
  // process holds it.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(const std::string& data_dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  DataDirLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

}  // namespace keyward
