#include "crypto/secret_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace keyward {
namespace {

constexpr size_t kMinClass = 16;
constexpr size_t kMaxClass = 4096;
constexpr size_t kNumClasses = 9;  // 16 .. 4096
constexpr size_t kChunkBytes = 64 * 1024;

struct FreeBlock {
  FreeBlock* next;
};

struct Arena {
  std::mutex mu;
  bool dont_dump = true;
  FreeBlock* free_lists[kNumClasses] = {};
  std::vector<std::pair<void*, size_t>> mappings;  // chunks and large blocks, for re-marking
};

Arena& TheArena() {
  static Arena* arena = new Arena;  // never destroyed: blocks may be freed during exit
  return *arena;
}

size_t PageRound(size_t n) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

void Mark(void* p, size_t n, bool dont_dump) {
  madvise(p, n, dont_dump ? MADV_DONTDUMP : MADV_DODUMP);
}

// Mapped, marked; nullptr when the kernel refuses the mapping.
void* MapMarked(Arena& a, size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  Mark(p, n, a.dont_dump);
  a.mappings.emplace_back(p, n);
  return p;
}

size_t ClassOf(size_t size, size_t* class_bytes) {
  size_t c = 0, bytes = kMinClass;
  while (bytes < size) {
    bytes *= 2;
    ++c;
  }
  *class_bytes = bytes;
  return c;
}

}  // namespace

void* SecretAlloc(size_t size) {
  if (size == 0) return nullptr;
  Arena& a = TheArena();
  std::lock_guard<std::mutex> lock(a.mu);
  if (size > kMaxClass) {
    void* p = MapMarked(a, PageRound(size));
    if (p == nullptr) throw std::bad_alloc();
    return p;  // fresh anonymous pages are zero
  }
  size_t bytes = 0;
  size_t c = ClassOf(size, &bytes);
  if (a.free_lists[c] == nullptr) {
    auto* chunk = static_cast<uint8_t*>(MapMarked(a, kChunkBytes));
    if (chunk == nullptr) throw std::bad_alloc();
    for (size_t off = kChunkBytes; off >= bytes; off -= bytes) {
      auto* b = reinterpret_cast<FreeBlock*>(chunk + off - bytes);
      b->next = a.free_lists[c];
      a.free_lists[c] = b;
    }
  }
  FreeBlock* b = a.free_lists[c];
  a.free_lists[c] = b->next;
  std::memset(b, 0, bytes);
  return b;
}

void SecretFree(void* block, size_t size) {
  if (block == nullptr) return;
  Arena& a = TheArena();
  std::lock_guard<std::mutex> lock(a.mu);
  if (size > kMaxClass) {
    size_t n = PageRound(size);
    for (auto it = a.mappings.begin(); it != a.mappings.end(); ++it) {
      if (it->first == block) {
        a.mappings.erase(it);
        break;
      }
    }
    munmap(block, n);
    return;
  }
  size_t bytes = 0;
  size_t c = ClassOf(size, &bytes);
  auto* b = static_cast<FreeBlock*>(block);
  b->next = a.free_lists[c];
  a.free_lists[c] = b;
}

void SetSecretMemoryDontDump(bool on) {
  Arena& a = TheArena();
  std::lock_guard<std::mutex> lock(a.mu);
  a.dont_dump = on;
  for (const auto& [p, n] : a.mappings) Mark(p, n, on);
}

bool SecretMemoryDontDump() {
  Arena& a = TheArena();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.dont_dump;
}

}  // namespace keyward
