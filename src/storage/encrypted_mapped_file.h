#pragma once
// Random reads of an encrypted file from a read-only mapping of its ciphertext instead of one
// pread(2) per block. A block-cache miss in RocksDB costs a syscall and a kernel copy from the
// page cache (~1 µs per 4 KiB block here, most of a plaintext read); the encrypted file system
// must touch every byte again to decrypt it. Copying from a mapping into the caller's buffer
// and decrypting there in place does both for less than the syscall alone: readrandom's
// encrypted read path costs about what the plaintext one does.
//
// The ciphertext's page-cache pages are mapped, never plaintext: plaintext exists only in the
// caller's buffer, as with pread.
//
// Faults: a read from a mapping raises SIGBUS where pread would fail (the file shrank under us,
// or the disk returned an error). The copy runs under a SIGBUS guard (sigsetjmp, one thread-local
// pointer, no syscall per read): a fault inside the mapped range ends the copy and the read is
// redone with pread, which returns the error or short read RocksDB reports as before. SIGBUS
// elsewhere goes to whatever handler was installed before ours (by default: the process dies,
// as without us). One case raises no SIGBUS: a file truncated under a reader to a size inside
// the page holding the new end reads as zeros there (the kernel zero-fills the rest of that
// page); RocksDB never truncates an SST, and the block checksum reports such a block as
// corruption rather than returning it.
//
// Used for reads up to kMaxMappedRead bytes (data, index and filter blocks); larger ones
// (compaction readahead, whole-file reads) keep pread, whose one syscall is small next to the
// copy and which lets the kernel read the range in one request. The mapping is advised
// MADV_RANDOM, like the descriptor RocksDB opens SSTs with: a cold block costs one page read
// per 4 KiB page it spans (pread: one request), so a data set far larger than memory sees more
// read requests; KEYWARD_MAPPED_READS=0 in the environment turns mapped reads off.

#include <memory>
#include <string>

#include "rocksdb/env_encryption.h"
#include "rocksdb/file_system.h"

namespace keyward {

inline constexpr size_t kMaxMappedRead = 64 * 1024;

// Wraps `file` (the stock encrypted reader of `fname`, already opened and its header checked)
// so that small reads come from a mapping of `fname`. Returns `file` unchanged when the file
// cannot be mapped (empty, shorter than its header, mapping refused) or `provider` gives no
// stream for it: reads then go through `file` as before.
std::unique_ptr<rocksdb::FSRandomAccessFile> MapEncryptedFileForReads(
    const std::string& fname, const rocksdb::FileOptions& options,
    rocksdb::EncryptionProvider& provider, std::unique_ptr<rocksdb::FSRandomAccessFile> file);

// Whether mapped reads are on in this process (KEYWARD_MAPPED_READS is not "0"), read once.
bool MappedReadsEnabled();

// Tests only: copies `n` bytes at `src` (inside a mapping) to `dst` under the SIGBUS guard;
// false if reading `src` faulted.
bool CopyFromMappingForTest(char* dst, const char* src, size_t n);

}  // namespace keyward
