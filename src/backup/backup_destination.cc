#include "backup/backup_destination.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
  return std::unique_ptr<LocalDirectoryDestination>(new LocalDirectoryDestination(canonical));
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
  // Each directory level made 0700 (MakeDirs sets the mode of the last level only).
  for (size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    RETURN_IF_ERROR(MakeDirs(absl::StrCat(root_, "/", name.substr(0, slash)), 0700));
  }
  // Temp name, fsync, rename, fsync(dir): a crash leaves the object whole or absent; List skips
  // the ".tmp" leftovers, which the next delete of the backup removes.
  return WriteFileAtomically(path, data, 0600);
}

absl::StatusOr<std::string> LocalDirectoryDestination::Get(const std::string& name) {
  ASSIGN_OR_RETURN(std::string path, PathFor(name));
  if (access(path.c_str(), F_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("backup object ", name, " is missing from ", Describe()));
  }
  return ReadFileToString(path, kMaxObjectBytes);
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
  std::filesystem::remove_all(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot delete ", path, ": ", ec.message()));
  return FsyncDirectory(DirName(path));
}

}  // namespace keyward
