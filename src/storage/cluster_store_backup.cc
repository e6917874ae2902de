// ClusterStore's side of backups: a consistent checkpoint and plaintext reads of its files.
// Kept apart from cluster_store.cc so the backup work touches the store in one small place.

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "crypto/secret_bytes.h"
#include "rocksdb/utilities/checkpoint.h"
#include "storage/cluster_store.h"
#include "storage/rocks_status.h"
#include "util/status_macros.h"

namespace keyward {

absl::Status ClusterStore::CreateCheckpoint(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: always flush, so the checkpoint is SSTs + MANIFEST with no WAL to
  // replay (a WAL would only be copied, which is fine too, but larger).
  if (s.ok()) s = checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("cluster ", options_.cluster_id,
                     ": cannot take a checkpoint for the backup: ", s.ToString()));
  }
  return absl::OkStatus();
}

absl::Status ClusterStore::ReadDecrypted(
    const std::string& path, size_t piece,
    const std::function<absl::Status(uint64_t size, std::string_view bytes)>& sink,
    const std::function<uint8_t*()>& buffer) {
  rocksdb::IOOptions io;
  uint64_t size = 0;
  rocksdb::IOStatus s = fs_->GetFileSize(path, io, &size, nullptr);
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  if (s.ok()) s = fs_->NewSequentialFile(path, rocksdb::FileOptions(), &file, nullptr);
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("cannot read ", path, ": ", s.ToString()));
  }
  // Plaintext: the caller's buffers, or a wiped one of our own reused for every piece.
  SecretBytes own(buffer ? 0 : std::max<size_t>(piece, 1));
  uint64_t done = 0;
  do {
    size_t want = static_cast<size_t>(std::min<uint64_t>(piece, size - done));
    uint8_t* into = buffer ? buffer() : own.data();
    rocksdb::Slice got;
    if (want > 0) {
      s = file->Read(want, io, &got, reinterpret_cast<char*>(into), nullptr);
      if (!s.ok()) {
        return absl::InternalError(absl::StrCat("cannot read ", path, ": ", s.ToString()));
      }
      if (got.size() != want) {
        return absl::InternalError(absl::StrCat(path, " changed size while it was read"));
      }
    }
    RETURN_IF_ERROR(sink(size, std::string_view(got.data(), got.size())));
    done += want;
  } while (done < size);
  return absl::OkStatus();
}

}  // namespace keyward
