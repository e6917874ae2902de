#pragma once
// Crash-safe file writes and bounded reads.
// WriteFileAtomically: temp file in the same directory → write → fsync → rename → fsync(dir), so
// a crash at any instant leaves either the old or the new content, never a torn file.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

absl::Status WriteFileAtomically(const std::string& path, std::string_view data, int mode);
absl::StatusOr<std::string> ReadFileToString(const std::string& path, size_t max_size);
// Reads the whole file (at most `max_size` bytes) into the buffer `sink` returns for its size:
// callers holding secrets read straight into wiped memory (crypto/secret_file.h).
absl::Status ReadFileInto(const std::string& path, size_t max_size,
                          const std::function<char*(size_t)>& sink);
absl::Status FsyncDirectory(const std::string& dir);
absl::Status MakeDirs(const std::string& dir, int mode);
// The names in the directory open as `fd` (named `path` in errors), without "." and "..";
// `fd` stays open and unmoved (the listing reads a duplicate).
absl::StatusOr<std::vector<std::string>> ListDirAt(int fd, const std::string& path);
std::string DirName(const std::string& path);
std::string ErrnoText(int err);
// A failed write's status: ResourceExhausted "disk full: what: ..." for ENOSPC/EDQUOT (callers
// tell users "disk full", not a generic error), Internal otherwise.
absl::Status WriteError(int err, std::string_view what);

}  // namespace keyward
