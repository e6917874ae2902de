#pragma once
// keyward's encrypted RocksDB file system: RocksDB's own EncryptedFileSystem over
// KeywardEncryptionProvider for every file operation except creating a writable file, where
// appends are encrypted into a buffer the file keeps. RocksDB's EncryptedWritableFile allocates
// an aligned buffer, copies and frees it on every append (one per WAL record: malloc and free
// were ~2.5 % of fillrandom's CPU). Random reads up to 64 KiB come from a mapping of the
// ciphertext instead of a pread each (storage/encrypted_mapped_file.h). The on-disk format is the
// provider's, unchanged: files written here are read by the stock file system (the ldb plugin,
// older keyward) and back.

#include <memory>

#include "rocksdb/file_system.h"
#include "storage/encryption_provider.h"

namespace keyward {

inline constexpr char kEncryptedFsName[] = "KeywardEncryptedFileSystem";

// `base` stores the bytes (FileSystem::Default() in production).
std::unique_ptr<rocksdb::FileSystem> NewKeywardEncryptedFs(
    std::shared_ptr<rocksdb::FileSystem> base,
    std::shared_ptr<rocksdb::EncryptionProvider> provider);

}  // namespace keyward
