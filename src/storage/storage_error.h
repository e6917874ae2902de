#pragma once
// Marks a status as coming from a cluster's own files (damaged, missing, disk full, I/O) rather
// than from the key that opens them, so the control plane can tell "repair or free space" from
// "fix the key" whatever the status code (a KMS can answer DataLoss or Unavailable too).

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"

namespace keyward {

inline constexpr char kStorageErrorPayload[] = "type.keyward.dev/storage-error";

inline absl::Status MarkStorageError(absl::Status st) {
  if (!st.ok()) st.SetPayload(kStorageErrorPayload, absl::Cord("1"));
  return st;
}

inline bool IsStorageError(const absl::Status& st) {
  return !st.ok() && st.GetPayload(kStorageErrorPayload).has_value();
}

// `st` with a new message, keeping its code and the storage mark.
inline absl::Status Reworded(const absl::Status& st, const std::string& message) {
  absl::Status out(st.code(), message);
  return IsStorageError(st) ? MarkStorageError(out) : out;
}

}  // namespace keyward
