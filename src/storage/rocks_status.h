#pragma once
// RocksDB status → absl::Status, for the storage layer's own files.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace keyward {

inline absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

}  // namespace keyward
