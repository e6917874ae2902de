#pragma once
// Wall-clock milliseconds since the epoch: the default for every injectable clock.

#include <chrono>
#include <cstdint>

namespace keyward {

inline int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace keyward
