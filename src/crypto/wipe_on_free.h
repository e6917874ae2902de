#pragma once
// Process-wide wipe of freed C++ heap memory, so that plaintext which passed through RocksDB
// (memtable arena blocks, block-cache blocks, read and write buffers, WriteBatch strings) is not
// left readable in freed memory after a cluster is paused or its key is lost.
//
// wipe_on_free.cc replaces the global operator delete family (all sizes, alignments, arrays):
// when enabled, each one zeroes the whole block (malloc_usable_size bytes, explicit_bzero so the
// store cannot be optimised away) before free(). The stock operator new already allocates with
// malloc, so the pair stays consistent. Blocks RocksDB or OpenSSL free with free() directly are
// not covered; none of them holds plaintext values (checked by
// cluster_store_memory_test.cc) and OpenSSL cleanses its own key schedules.
//
// The replacement is linked into every binary that calls EnableWipeOnFree() (the call pulls the
// object file in); the executable exports it, so librocksdb.so's deletes resolve to it too.
// Off by default; `keyward serve` enables it at start. Unavailable under TSan and MSan (their
// runtime owns operator delete): WipeOnFreeEnabled() then stays false. Under ASan it works, with
// ASan's alloc/dealloc-mismatch check off in binaries that link it. Thread-safe.

namespace keyward {

void EnableWipeOnFree();
bool WipeOnFreeEnabled();
// Benchmarks and tests only: measures the same process with and without the wipe.
void SetWipeOnFreeForTest(bool on);

}  // namespace keyward
