#pragma once
// RocksDB status → absl::Status, for the storage layer's own files.
//   Corruption          → DataLoss (the files are damaged: see ClusterStore::Repair)
//   IOError NoSpace     → ResourceExhausted, message starting "disk full" (ENOSPC, EDQUOT)
//   NotFound / InvalidArgument → the same; anything else → Internal.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace keyward {

inline bool IsRocksNoSpace(const rocksdb::Status& s) {
  if (s.IsNoSpace()) return true;
  // Some paths (the encrypted file system's prefix write, fallocate) report ENOSPC as a plain
  // IOError whose text carries strerror(ENOSPC) or strerror(EDQUOT).
  if (!s.IsIOError()) return false;
  std::string text = s.ToString();
  return text.find("No space left on device") != std::string::npos ||
         text.find("Disk quota exceeded") != std::string::npos;
}

inline absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (IsRocksNoSpace(s)) return absl::ResourceExhaustedError("disk full: " + msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

}  // namespace keyward
