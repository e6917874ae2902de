// Throughput of keyward's CTR stream (CtrCipher::Apply over 16 KiB buffers, as RocksDB calls it)
// in bytes per second; bench/cipher compares it with `openssl speed` in the same run.
#include <chrono>
#include <cstdio>
#include <vector>

#include "crypto/aes_ctr.h"
#include "crypto/random.h"

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  auto key = keyward::RandomSecret(32);
  uint8_t iv[16] = {};
  auto cipher = keyward::CtrCipher::New(*key, iv);
  if (!cipher.ok()) return 1;
  std::vector<uint8_t> buf(16384, 0x5a);
  uint64_t offset = 4096, bytes = 0;
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 256; ++i) {
      if (!(*cipher)->Apply(offset, buf.data(), buf.size()).ok()) return 1;
      offset += buf.size();
      bytes += buf.size();
    }
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  printf("%.0f\n", bytes / elapsed);
  return 0;
}
