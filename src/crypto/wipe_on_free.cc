#include "crypto/wipe_on_free.h"

#include <malloc.h>
#include <string.h>

#include <atomic>
#include <cstdlib>
#include <new>

// Sanitizer runtimes bring their own operator new/delete (and report new/free mismatches), so
// sanitizer builds keep theirs and the wipe is unavailable there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KEYWARD_NO_WIPE_ON_FREE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define KEYWARD_NO_WIPE_ON_FREE 1
#endif
#endif

namespace keyward {
namespace {

std::atomic<bool> g_wipe{false};

inline void WipeAndFree(void* p) noexcept {
  if (p == nullptr) return;
  if (g_wipe.load(std::memory_order_relaxed)) explicit_bzero(p, malloc_usable_size(p));
  std::free(p);
}

}  // namespace

#ifdef KEYWARD_NO_WIPE_ON_FREE
void EnableWipeOnFree() {}
void SetWipeOnFreeForTest(bool) {}
#else
void EnableWipeOnFree() { g_wipe.store(true); }
void SetWipeOnFreeForTest(bool on) { g_wipe.store(on); }
#endif
bool WipeOnFreeEnabled() { return g_wipe.load(); }

}  // namespace keyward

#ifndef KEYWARD_NO_WIPE_ON_FREE

// libstdc++'s operator new (plain, array, nothrow and aligned) allocates with malloc /
// aligned_alloc, whose blocks free() releases and malloc_usable_size measures.
void operator delete(void* p) noexcept { keyward::WipeAndFree(p); }
void operator delete[](void* p) noexcept { keyward::WipeAndFree(p); }
void operator delete(void* p, std::size_t) noexcept { keyward::WipeAndFree(p); }
void operator delete[](void* p, std::size_t) noexcept { keyward::WipeAndFree(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { keyward::WipeAndFree(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { keyward::WipeAndFree(p); }
void operator delete(void* p, std::align_val_t) noexcept { keyward::WipeAndFree(p); }
void operator delete[](void* p, std::align_val_t) noexcept { keyward::WipeAndFree(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { keyward::WipeAndFree(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { keyward::WipeAndFree(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  keyward::WipeAndFree(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  keyward::WipeAndFree(p);
}
#endif  // KEYWARD_NO_WIPE_ON_FREE
