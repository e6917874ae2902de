#pragma once
// Wiping what dead stack frames still hold.

namespace keyward {

// Zeroes the calling thread's stack below the current frame (256 KiB). RocksDB 7.8 can read a
// small block into a buffer on the reading thread's stack (BlockFetcher's 5,000-byte stack_buf_),
// so plaintext blocks linger in dead stack frames of the threads that read them (seen in
// cluster_store_memory_test.cc); the threads that ran a closed cluster's reads call this once it
// is closed.
void WipeStaleStack();

}  // namespace keyward
