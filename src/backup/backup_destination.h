#pragma once
// Where backup objects go: a flat namespace of objects named like paths
// ("b-1/data/000001-00000001") holding opaque bytes (already encrypted by the backup format; a
// destination never sees plaintext or keys). Put is atomic: an object is either absent or complete,
// never partial — the local directory writes a temp name, fsyncs, renames and fsyncs the directory;
// Azure Blob (later) commits a block list. Implementations are thread-safe.

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"

namespace keyward {

class BackupDestination {
 public:
  virtual ~BackupDestination() = default;
  // Safe to show users and to store in a backup record ("local:/data/backups").
  virtual std::string Describe() const = 0;
  virtual absl::Status Put(const std::string& name, std::string_view data) = 0;
  // Put whose object may become durable (and, after a crash before the next SyncPuts(), whole)
  // only at the next SyncPuts(): a backup puts its chunks this way and syncs once before its
  // manifest, so an interrupted backup's objects are never read (no manifest), and a damaged
  // chunk would fail its AEAD tag anyway. The local directory writes each object under its
  // name without an fsync and syncs the file system once. Default: Put (durable at once).
  virtual absl::Status PutDeferred(const std::string& name, std::string_view data) {
    return Put(name, data);
  }
  virtual absl::Status SyncPuts() { return absl::OkStatus(); }
  // NotFound naming the object when it does not exist.
  virtual absl::StatusOr<std::string> Get(const std::string& name) = 0;
  // Get into `out`, reusing its memory (a restore's workers fetch chunk after chunk).
  virtual absl::Status GetInto(const std::string& name, std::string* out) {
    absl::StatusOr<std::string> got = Get(name);
    if (!got.ok()) return got.status();
    *out = *std::move(got);
    return absl::OkStatus();
  }
  // Names of complete objects starting with `prefix`, sorted.
  virtual absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) = 0;
  // Removing an absent object is not an error.
  virtual absl::Status Delete(const std::string& name) = 0;
  // Removes every object under `dir` ("b-1/"), incomplete uploads included.
  virtual absl::Status DeleteAll(const std::string& dir) = 0;
};

// Objects as files below `root` (created 0700; files 0600). Object names must be relative paths
// of [A-Za-z0-9._-] segments separated by '/', none "." or "..", none starting with ".tmp".
class LocalDirectoryDestination : public BackupDestination {
 public:
  static absl::StatusOr<std::unique_ptr<LocalDirectoryDestination>> New(const std::string& root);
  ~LocalDirectoryDestination() override;
  std::string Describe() const override { return "local:" + root_; }
  absl::Status Put(const std::string& name, std::string_view data) override;
  absl::Status PutDeferred(const std::string& name, std::string_view data) override;
  absl::Status SyncPuts() override;
  absl::StatusOr<std::string> Get(const std::string& name) override;
  absl::Status GetInto(const std::string& name, std::string* out) override;
  absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  absl::Status Delete(const std::string& name) override;
  absl::Status DeleteAll(const std::string& dir) override;
  const std::string& root() const { return root_; }

 private:
  LocalDirectoryDestination(std::string root, int sync_fd)
      : root_(std::move(root)), sync_fd_(sync_fd) {}
  absl::StatusOr<std::string> PathFor(const std::string& name) const;
  absl::Status MakeParents(const std::string& name);
  std::string root_;
  const int sync_fd_;                                  // the root, for syncfs
  std::mutex sync_mu_;                                 // one SyncPuts at a time
  absl::Status sync_error_ ABSL_GUARDED_BY(sync_mu_);  // a failed sync: every later one fails
};

}  // namespace keyward
