// Random reads through the server's encrypted file system, which serves small reads from a
// mapping of the ciphertext (encrypted_mapped_file.h): every offset and length decrypts to the
// plaintext written, from many threads at once, the mapping goes away with the reader, and a
// file cut short under an open reader gives a short read rather than a crash.
#include "storage/encrypted_mapped_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "crypto/random.h"
#include "rocksdb/env_encryption.h"
#include "storage/encrypted_fs.h"
#include "storage/key_dictionary.h"
#include "storage/test_providers.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class MappedReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-mapped-" + *RandomHex(6));
    fs::create_directories(root_);
    auto dict = KeyDictionary::Create((root_ / "keys.dict").string(), "c-1", provider_, 1000);
    ASSERT_TRUE(dict.ok()) << dict.status();
    enc_ = std::make_shared<KeywardEncryptionProvider>(
        std::shared_ptr<KeyDictionary>(*std::move(dict)));
    ours_ = NewKeywardEncryptedFs(rocksdb::FileSystem::Default(), enc_);
    path_ = (root_ / "000007.sst").string();
    // More than one mapped-read limit, not a multiple of the AES block or of a page.
    plain_.resize(3 * kMaxMappedRead + 12345);
    for (size_t i = 0; i < plain_.size(); ++i) plain_[i] = static_cast<char>(i * 31 + i / 977);
    std::unique_ptr<rocksdb::FSWritableFile> w;
    ASSERT_TRUE(ours_->NewWritableFile(path_, {}, &w, nullptr).ok());
    ASSERT_TRUE(w->Append(plain_, {}, nullptr).ok());
    ASSERT_TRUE(w->Close({}, nullptr).ok());
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<rocksdb::FSRandomAccessFile> Open() {
    std::unique_ptr<rocksdb::FSRandomAccessFile> r;
    rocksdb::IOStatus io = ours_->NewRandomAccessFile(path_, {}, &r, nullptr);
    EXPECT_TRUE(io.ok()) << io.ToString();
    return r;
  }
  static bool Mapped(const std::string& path) {
    std::ifstream maps("/proc/self/maps");
    std::string all((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
    return all.find(path) != std::string::npos;
  }

  TestProvider provider_{"key-a"};
  fs::path root_;
  std::string path_, plain_;
  std::shared_ptr<rocksdb::EncryptionProvider> enc_;
  std::shared_ptr<rocksdb::FileSystem> ours_;
};

// Reads `len` bytes at `offset` and returns what came back.
std::string ReadAt(const rocksdb::FSRandomAccessFile& r, uint64_t offset, size_t len) {
  std::string scratch(len, '\0');
  rocksdb::Slice got;
  rocksdb::IOStatus io = r.Read(offset, len, {}, &got, scratch.data(), nullptr);
  if (!io.ok()) return "error: " + io.ToString();
  return got.ToString();
}

TEST_F(MappedReadTest, EveryOffsetAndLengthReadsBackThePlaintext) {
  if (!MappedReadsEnabled()) GTEST_SKIP() << "SKIPPED LOUDLY: KEYWARD_MAPPED_READS=0 is set";
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(Mapped(path_)) << "small reads should come from a mapping of " << path_;
  uint64_t seed = 99;
  auto next = [&seed](uint64_t bound) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (seed >> 33) % bound;
  };
  for (int i = 0; i < 3000; ++i) {
    // Mostly block-sized reads, some past the mapped-read limit (pread), some across the end.
    size_t len = i % 10 == 0 ? kMaxMappedRead + 1 + next(kMaxMappedRead) : 1 + next(9000);
    uint64_t offset = next(plain_.size());
    std::string got = ReadAt(*r, offset, len);
    ASSERT_EQ(got, plain_.substr(offset, len)) << "read " << i << ": " << len << " at " << offset;
  }
  EXPECT_EQ(ReadAt(*r, plain_.size(), 100), "");
  EXPECT_EQ(ReadAt(*r, 0, 0), "");
  r.reset();
  EXPECT_FALSE(Mapped(path_)) << "the mapping outlived its reader";
}

TEST_F(MappedReadTest, ConcurrentReadersOfOneFileEachGetTheirBytes) {
  auto r = Open();
  ASSERT_NE(r, nullptr);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      uint64_t seed = 1000 + t;
      auto next = [&seed](uint64_t bound) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        return (seed >> 33) % bound;
      };
      for (int i = 0; i < 2000; ++i) {
        size_t len = 1 + next(5000);
        uint64_t offset = next(plain_.size() - len);
        if (ReadAt(*r, offset, len) != plain_.substr(offset, len)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Reading a page the file no longer has raises SIGBUS on a mapping; the reader must turn that
// into what pread gives (a short read here), not die.
TEST_F(MappedReadTest, FileCutShortUnderAnOpenReaderGivesAShortReadNotACrash) {
  auto r = Open();
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(ReadAt(*r, 100, 4000), plain_.substr(100, 4000));
  ASSERT_EQ(truncate(path_.c_str(), static_cast<off_t>(kFileHeaderSize + 8192)), 0);
  std::string got = ReadAt(*r, 2 * kMaxMappedRead, 4096);
  EXPECT_EQ(got, "") << "bytes past the new end of file";
  // What is still in the file reads back.
  EXPECT_EQ(ReadAt(*r, 1000, 4096), plain_.substr(1000, 4096));
}

// A SIGBUS that is not inside a guarded copy still ends the process: the guard must not swallow
// faults of other code.
TEST(MappingFaultGuard, FaultsOutsideAGuardedCopyStillKillTheProcess) {
  fs::path p = fs::temp_directory_path() / ("kw-sigbus-" + *RandomHex(6));
  int fd = open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 8192), 0);
  auto* map = static_cast<const char*>(mmap(nullptr, 8192, PROT_READ, MAP_SHARED, fd, 0));
  ASSERT_NE(map, MAP_FAILED);
  ASSERT_EQ(ftruncate(fd, 0), 0);
  close(fd);
  fs::remove(p);
  char buf[16];
  EXPECT_FALSE(CopyFromMappingForTest(buf, map + 4096, sizeof(buf)));  // guarded: survives
  EXPECT_DEATH(
      {
        volatile char c = map[4096];
        (void)c;
      },
      "");
  munmap(const_cast<char*>(map), 8192);
}

}  // namespace
}  // namespace keyward
