#pragma once
// Memory for key material (SecretBytes) that core dumps leave out. Blocks come from mmap'ed
// chunks marked MADV_DONTDUMP, never from the heap: madvise works on whole pages, and a heap page
// holds other objects (and is reused for them once the key is gone). Small blocks are carved in
// power-of-two size classes from 64 KiB chunks (kept for reuse, never unmapped); blocks over
// 4 KiB get pages of their own, unmapped on free. Every block is zeroed when handed out; callers
// wipe before freeing (SecretBytes does). Thread-safe.

#include <cstddef>

namespace keyward {

void* SecretAlloc(size_t size);             // zeroed; nullptr only for size 0
void SecretFree(void* block, size_t size);  // size as passed to SecretAlloc
// Default true. `keyward serve --allow-core-dumps` turns it off (MADV_DODUMP on every chunk,
// existing and future) so a debugging dump is complete.
void SetSecretMemoryDontDump(bool on);
bool SecretMemoryDontDump();

}  // namespace keyward
