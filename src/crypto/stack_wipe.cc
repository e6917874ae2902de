#include "crypto/stack_wipe.h"

#include <alloca.h>
#include <string.h>

#include <cstddef>

namespace keyward {

__attribute__((noinline)) void WipeStaleStack() {
  constexpr size_t kBytes = 256 * 1024;  // well inside any thread's stack (8 MiB by default)
  char* below = static_cast<char*>(alloca(kBytes));
  explicit_bzero(below, kBytes);
  asm volatile("" : : "r"(below) : "memory");  // keeps the zeroing
}

}  // namespace keyward
