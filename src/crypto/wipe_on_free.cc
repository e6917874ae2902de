#include "crypto/wipe_on_free.h"

#include <malloc.h>
#include <string.h>

#include <atomic>
#include <cstdlib>
#include <new>

// ThreadSanitizer and MemorySanitizer own operator delete (they track every block through it), so
// the wipe is unavailable there. AddressSanitizer only checks that a block is released the way it
// was allocated; our delete releases with free(), which ASan then calls a mismatch with its
// operator new. Those builds turn that one check off (below) so the wipe is tested under ASan too;
// use-after-free, double free and overflow checks stay.
#if defined(__SANITIZE_THREAD__)
#define KEYWARD_NO_WIPE_ON_FREE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define KEYWARD_NO_WIPE_ON_FREE 1
#endif
#endif

#if !defined(KEYWARD_NO_WIPE_ON_FREE)
#if defined(__SANITIZE_ADDRESS__)
#define KEYWARD_WIPE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEYWARD_WIPE_UNDER_ASAN 1
#endif
#endif
#endif

#ifdef KEYWARD_WIPE_UNDER_ASAN
// Read by the ASan runtime at start; ASAN_OPTIONS from the environment still override it.
extern "C" const char* __asan_default_options() { return "alloc_dealloc_mismatch=0"; }
#endif

namespace keyward {
namespace {

std::atomic<bool> g_wipe{false};

[[maybe_unused]] inline void WipeAndFree(void* p) noexcept {
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
