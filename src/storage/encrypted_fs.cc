#include "storage/encrypted_fs.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "rocksdb/env_encryption.h"
#include "storage/encrypted_mapped_file.h"

namespace keyward {
namespace {

// Appends are encrypted in pieces of at most this size, which bounds the buffer a file keeps
// (RocksDB's WritableFileWriter hands over at most its 1 MiB buffer, or a larger write whole).
constexpr size_t kMaxPiece = 1 << 20;

class EncryptingWritableFile : public rocksdb::FSWritableFile {
 public:
  EncryptingWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file,
                         std::unique_ptr<rocksdb::BlockAccessCipherStream> stream, size_t prefix)
      : file_(std::move(file)), stream_(std::move(stream)), prefix_(prefix) {}

  using rocksdb::FSWritableFile::Append;
  using rocksdb::FSWritableFile::PositionedAppend;

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    // The physical size (header included) is where this data lands: the stream's offsets are
    // physical, as in RocksDB's EncryptedWritableFile.
    uint64_t offset = file_->GetFileSize(options, dbg);
    return EncryptEach(data, offset, [&](const rocksdb::Slice& piece, uint64_t) {
      return file_->Append(piece, options, dbg);
    });
  }

  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    return EncryptEach(data, offset + prefix_, [&](const rocksdb::Slice& piece, uint64_t at) {
      return file_->PositionedAppend(piece, at, options, dbg);
    });
  }

  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    return file_->Truncate(size + prefix_, options, dbg);
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    buf_.reset();
    capacity_ = 0;
    return file_->Close(options, dbg);
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return file_->Flush(options, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return file_->Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return file_->Fsync(options, dbg);
  }
  bool IsSyncThreadSafe() const override { return file_->IsSyncThreadSafe(); }
  bool use_direct_io() const override { return file_->use_direct_io(); }
  size_t GetRequiredBufferAlignment() const override { return file_->GetRequiredBufferAlignment(); }
  void SetWriteLifeTimeHint(rocksdb::Env::WriteLifeTimeHint hint) override {
    file_->SetWriteLifeTimeHint(hint);
  }
  uint64_t GetFileSize(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return file_->GetFileSize(options, dbg) - prefix_;
  }
  void SetPreallocationBlockSize(size_t size) override { file_->SetPreallocationBlockSize(size); }
  void GetPreallocationStatus(size_t* block_size, size_t* last_allocated_block) override {
    file_->GetPreallocationStatus(block_size, last_allocated_block);
  }
  rocksdb::IOStatus InvalidateCache(size_t offset, size_t length) override {
    return file_->InvalidateCache(offset + prefix_, length);
  }
  rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    return file_->RangeSync(offset + prefix_, nbytes, options, dbg);
  }
  void PrepareWrite(size_t offset, size_t len, const rocksdb::IOOptions& options,
                    rocksdb::IODebugContext* dbg) override {
    file_->PrepareWrite(offset + prefix_, len, options, dbg);
  }
  rocksdb::IOStatus Allocate(uint64_t offset, uint64_t len, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    return file_->Allocate(offset + prefix_, len, options, dbg);
  }

 private:
  // Copies `data` piece by piece into buf_, encrypts it there for physical offset `offset`
  // onwards and hands each encrypted piece to `write(piece, physical offset)`. The caller's
  // buffer is never modified; buf_ holds only ciphertext once a call returns (a failed
  // encryption wipes it).
  template <typename Write>
  rocksdb::IOStatus EncryptEach(const rocksdb::Slice& data, uint64_t offset, Write write) {
    size_t done = 0;
    if (data.size() == 0) return write(data, offset);
    while (done < data.size()) {
      size_t n = std::min(data.size() - done, kMaxPiece);
      if (capacity_ < n) {
        buf_.reset(new char[n]);
        capacity_ = n;
      }
      std::memcpy(buf_.get(), data.data() + done, n);
      rocksdb::Status st = stream_->Encrypt(offset + done, buf_.get(), n);
      if (!st.ok()) {
        std::memset(buf_.get(), 0, n);
        return rocksdb::IOStatus::IOError(st.ToString());
      }
      rocksdb::IOStatus io = write(rocksdb::Slice(buf_.get(), n), offset + done);
      if (!io.ok()) return io;
      done += n;
    }
    return rocksdb::IOStatus::OK();
  }

  std::unique_ptr<rocksdb::FSWritableFile> file_;
  std::unique_ptr<rocksdb::BlockAccessCipherStream> stream_;
  const size_t prefix_;
  std::unique_ptr<char[]> buf_;  // reused across appends; ciphertext only between calls
  size_t capacity_ = 0;
};

class KeywardEncryptedFs : public rocksdb::FileSystemWrapper {
 public:
  KeywardEncryptedFs(std::shared_ptr<rocksdb::FileSystem> base,
                     std::shared_ptr<rocksdb::EncryptionProvider> provider)
      : rocksdb::FileSystemWrapper(rocksdb::NewEncryptedFS(base, provider)),
        base_(std::move(base)),
        provider_(std::move(provider)),
        map_reads_(base_.get() == rocksdb::FileSystem::Default().get()) {}

  static const char* kClassName() { return kEncryptedFsName; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    // Direct writes need aligned buffers and mmap writes are refused: RocksDB's file system
    // handles both as before.
    if (options.use_direct_writes || options.use_mmap_writes) {
      return target()->NewWritableFile(fname, options, result, dbg);
    }
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus io = base_->NewWritableFile(fname, options, &file, dbg);
    if (!io.ok()) return io;
    const size_t prefix_length = provider_->GetPrefixLength();
    std::string prefix(prefix_length, '\0');
    rocksdb::Status st = provider_->CreateNewPrefix(fname, prefix.data(), prefix_length);
    if (!st.ok()) return rocksdb::IOStatus::IOError(st.ToString());
    io = file->Append(prefix, options.io_options, dbg);
    if (!io.ok()) return io;
    rocksdb::Slice prefix_slice(prefix);
    std::unique_ptr<rocksdb::BlockAccessCipherStream> stream;
    st = provider_->CreateCipherStream(fname, options, prefix_slice, &stream);
    if (!st.ok()) return rocksdb::IOStatus::IOError(st.ToString());
    *result =
        std::make_unique<EncryptingWritableFile>(std::move(file), std::move(stream), prefix_length);
    return rocksdb::IOStatus::OK();
  }

  // RocksDB's reader opens the file and checks its header; small reads then come from a
  // mapping (storage/encrypted_mapped_file.h), which reads the local file directly and so is
  // used only over the default file system.
  rocksdb::IOStatus NewRandomAccessFile(const std::string& fname,
                                        const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus io = target()->NewRandomAccessFile(fname, options, result, dbg);
    if (!io.ok() || !map_reads_) return io;
    *result = MapEncryptedFileForReads(fname, options, *provider_, std::move(*result));
    return io;
  }

 private:
  std::shared_ptr<rocksdb::FileSystem> base_;
  std::shared_ptr<rocksdb::EncryptionProvider> provider_;
  const bool map_reads_;
};

}  // namespace

std::unique_ptr<rocksdb::FileSystem> NewKeywardEncryptedFs(
    std::shared_ptr<rocksdb::FileSystem> base,
    std::shared_ptr<rocksdb::EncryptionProvider> provider) {
  return std::make_unique<KeywardEncryptedFs>(std::move(base), std::move(provider));
}

}  // namespace keyward
