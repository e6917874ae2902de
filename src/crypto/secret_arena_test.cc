#include "crypto/secret_arena.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "crypto/secret_bytes.h"
#include "gtest/gtest.h"

namespace keyward {
namespace {

// The VmFlags of the mapping holding `p` in /proc/self/smaps ("dd": left out of core dumps).
std::string VmFlagsOf(const void* p) {
  auto addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line.substr(8) + " ";
    }
  }
  return "(not mapped)";
}

TEST(SecretArenaTest, KeyBuffersAreLeftOutOfCoreDumps) {
  ASSERT_TRUE(SecretMemoryDontDump());
  SecretBytes key(32), big(10000);
  EXPECT_NE(VmFlagsOf(key.data()).find(" dd "), std::string::npos) << VmFlagsOf(key.data());
  EXPECT_NE(VmFlagsOf(big.data()).find(" dd "), std::string::npos) << VmFlagsOf(big.data());

  // --allow-core-dumps: existing and new buffers are dumped again.
  SetSecretMemoryDontDump(false);
  SecretBytes later(64);
  EXPECT_EQ(VmFlagsOf(key.data()).find(" dd "), std::string::npos) << VmFlagsOf(key.data());
  EXPECT_EQ(VmFlagsOf(later.data()).find(" dd "), std::string::npos);
  SetSecretMemoryDontDump(true);
  EXPECT_NE(VmFlagsOf(later.data()).find(" dd "), std::string::npos);
}

TEST(SecretArenaTest, BlocksAreZeroedAndReused) {
  void* a = SecretAlloc(32);
  std::memset(a, 0xAB, 32);
  SecretFree(a, 32);
  auto* b = static_cast<uint8_t*>(SecretAlloc(30));  // same class: the block comes back zeroed
  EXPECT_EQ(static_cast<void*>(b), a);
  for (int i = 0; i < 32; ++i) ASSERT_EQ(b[i], 0) << i;
  SecretFree(b, 30);
  // Many blocks of every class and a large one stay distinct and writable.
  std::vector<std::pair<uint8_t*, size_t>> blocks;
  for (size_t size : {1, 16, 17, 100, 4096, 5000, 70000}) {
    for (int i = 0; i < 50; ++i) {
      auto* p = static_cast<uint8_t*>(SecretAlloc(size));
      std::memset(p, static_cast<int>(blocks.size() & 0xff), size);
      blocks.emplace_back(p, size);
    }
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    ASSERT_EQ(blocks[i].first[blocks[i].second - 1], static_cast<uint8_t>(i & 0xff));
    SecretFree(blocks[i].first, blocks[i].second);
  }
  EXPECT_EQ(SecretAlloc(0), nullptr);
}

}  // namespace
}  // namespace keyward
