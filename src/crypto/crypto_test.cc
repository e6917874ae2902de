#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "crypto/aes_ctr.h"
#include "crypto/aes_gcm.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"
#include "util/bytes.h"

namespace keyward {
namespace {

std::string Hex(std::string_view h) { return *HexDecode(h); }
SecretBytes Key(std::string_view h) { return SecretBytes::FromView(Hex(h)); }

// NIST SP 800-38A, F.5.5 CTR-AES256.Encrypt.
constexpr char kCtrKey[] = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
constexpr char kCtrIv[] = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
constexpr char kCtrPlain[] =
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
constexpr char kCtrCipher[] =
    "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
    "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6";

TEST(CtrCipher, MatchesNistVectorInOneCall) {
  std::string iv = Hex(kCtrIv);
  auto c = CtrCipher::New(Key(kCtrKey), reinterpret_cast<const uint8_t*>(iv.data()));
  ASSERT_TRUE(c.ok()) << c.status();
  std::string data = Hex(kCtrPlain);
  ASSERT_TRUE((*c)->Apply(0, reinterpret_cast<uint8_t*>(data.data()), data.size()).ok());
  EXPECT_EQ(HexEncode(data), kCtrCipher);
}

TEST(CtrCipher, AnyOffsetAndSplitGivesSameKeystream) {
  std::string iv = Hex(kCtrIv);
  auto c = CtrCipher::New(Key(kCtrKey), reinterpret_cast<const uint8_t*>(iv.data()));
  ASSERT_TRUE(c.ok());
  std::string expected = Hex(kCtrCipher);
  for (size_t split = 1; split < 64; split += 7) {
    std::string data = Hex(kCtrPlain);
    auto* p = reinterpret_cast<uint8_t*>(data.data());
    ASSERT_TRUE((*c)->Apply(0, p, split).ok());
    ASSERT_TRUE((*c)->Apply(split, p + split, data.size() - split).ok());
    EXPECT_EQ(data, expected) << "split at " << split;
  }
}

// The cached context is reused without repositioning when a call starts where the previous one
// ended; calls that jump back, repeat an offset or skip ahead must still get their own keystream.
TEST(CtrCipher, SequentialAndJumpingCallsMatchOneShotKeystream) {
  std::string iv = Hex(kCtrIv);
  auto* ivp = reinterpret_cast<const uint8_t*>(iv.data());
  auto ref = CtrCipher::New(Key(kCtrKey), ivp);
  auto c = CtrCipher::New(Key(kCtrKey), ivp);
  ASSERT_TRUE(ref.ok() && c.ok());
  std::string keystream(20000, '\0');
  ASSERT_TRUE(
      (*ref)->Apply(0, reinterpret_cast<uint8_t*>(keystream.data()), keystream.size()).ok());
  uint64_t seed = 12345;
  auto next = [&seed](uint64_t bound) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (seed >> 33) % bound;
  };
  uint64_t offset = 0;
  for (int i = 0; i < 2000; ++i) {
    size_t len = 1 + next(300);
    switch (next(4)) {
      case 0:
        offset = next(keystream.size() - 400);
        break;  // jump anywhere
      case 1:
        offset = offset >= len ? offset - len : 0;
        break;  // re-read the last bytes
      default:
        break;  // continue where we stopped
    }
    if (offset + len > keystream.size()) offset = 0;
    std::string data(len, '\0');
    ASSERT_TRUE((*c)->Apply(offset, reinterpret_cast<uint8_t*>(data.data()), len).ok());
    ASSERT_EQ(data, keystream.substr(offset, len)) << "call " << i << " at offset " << offset;
    offset += len;
  }
}

TEST(CtrCipher, CounterCarriesAcrossAllBytes) {
  // IV of all 0xff: block 1 wraps to all zero; must equal a fresh cipher with a zero IV.
  std::string key = Hex(kCtrKey);
  uint8_t ones[16], zeros[16] = {};
  std::fill(std::begin(ones), std::end(ones), 0xff);
  auto a = CtrCipher::New(SecretBytes::FromView(key), ones);
  auto b = CtrCipher::New(SecretBytes::FromView(key), zeros);
  ASSERT_TRUE(a.ok() && b.ok());
  uint8_t x[16] = {}, y[16] = {};
  ASSERT_TRUE((*a)->Apply(16, x, 16).ok());
  ASSERT_TRUE((*b)->Apply(0, y, 16).ok());
  EXPECT_EQ(0, memcmp(x, y, 16));
}

// RocksDB reads one file from many threads at once: each call must get the keystream of its own
// offset whichever pooled context it runs on (a shared counter would show as wrong bytes).
TEST(CtrCipher, ConcurrentCallsAtRandomOffsetsEachGetTheirOwnKeystream) {
  std::string iv = Hex(kCtrIv);
  auto* ivp = reinterpret_cast<const uint8_t*>(iv.data());
  auto ref = CtrCipher::New(Key(kCtrKey), ivp);
  auto c = CtrCipher::New(Key(kCtrKey), ivp);
  ASSERT_TRUE(ref.ok() && c.ok());
  std::string keystream(64 * 1024, '\0');
  ASSERT_TRUE(
      (*ref)->Apply(0, reinterpret_cast<uint8_t*>(keystream.data()), keystream.size()).ok());
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      uint64_t seed = 777 + t;
      auto next = [&seed](uint64_t bound) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        return (seed >> 33) % bound;
      };
      for (int i = 0; i < 3000; ++i) {
        size_t len = 1 + next(5000);
        uint64_t offset = next(keystream.size() - len);
        std::string data(len, '\0');
        if (!(*c)->Apply(offset, reinterpret_cast<uint8_t*>(data.data()), len).ok() ||
            data != keystream.substr(offset, len)) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(CtrCipher, RejectsShortKey) {
  uint8_t iv[16] = {};
  EXPECT_FALSE(CtrCipher::New(SecretBytes(16), iv).ok());
}

struct GcmVector {
  const char* key;
  const char* iv;
  const char* plain;
  const char* aad;
  const char* cipher;
  const char* tag;
};

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13, 14 and 16.
const GcmVector kGcmVectors[] = {
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

TEST(Gcm, MatchesPublishedVectors) {
  for (const auto& v : kGcmVectors) {
    auto sealed = GcmSealWithNonceForTest(Key(v.key), Hex(v.iv), Hex(v.plain), Hex(v.aad));
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    EXPECT_EQ(HexEncode(*sealed), std::string(v.iv) + v.cipher + v.tag);
    auto opened = GcmOpen(Key(v.key), *sealed, Hex(v.aad));
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->view(), Hex(v.plain));
  }
}

TEST(Gcm, RefusesWrongKeyWrongAadAndTampering) {
  auto key = RandomSecret(32);
  auto other = RandomSecret(32);
  ASSERT_TRUE(key.ok() && other.ok());
  auto sealed = GcmSeal(*key, "dictionary key bytes", "cluster-a");
  ASSERT_TRUE(sealed.ok());
  EXPECT_TRUE(GcmOpen(*key, *sealed, "cluster-a").ok());
  EXPECT_EQ(GcmOpen(*other, *sealed, "cluster-a").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(GcmOpen(*key, *sealed, "cluster-b").status().code(), absl::StatusCode::kDataLoss);
  for (size_t i = 0; i < sealed->size(); ++i) {
    std::string bad = *sealed;
    bad[i] ^= 0x01;
    EXPECT_FALSE(GcmOpen(*key, bad, "cluster-a").ok()) << "flip at " << i;
  }
  EXPECT_FALSE(GcmOpen(*key, sealed->substr(0, 10), "cluster-a").ok());
}

TEST(Gcm, NoncesDiffer) {
  auto key = RandomSecret(32);
  ASSERT_TRUE(key.ok());
  EXPECT_NE(*GcmSeal(*key, "x", ""), *GcmSeal(*key, "x", ""));
}

TEST(SecretBytes, MoveEmptiesSourceAndCompareIsExact) {
  SecretBytes a = SecretBytes::FromView("abc");
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking moved-from state
  EXPECT_EQ(b.view(), "abc");
  EXPECT_TRUE(b.Equals(SecretBytes::FromView("abc")));
  EXPECT_FALSE(b.Equals(SecretBytes::FromView("abd")));
  EXPECT_FALSE(b.Equals(SecretBytes::FromView("ab")));
  SecretBytes c = b.Clone();
  EXPECT_TRUE(c.Equals(b));
}

}  // namespace
}  // namespace keyward
