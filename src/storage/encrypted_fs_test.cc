// The server's encrypted file system (encrypted_fs.h) against RocksDB's stock one over the same
// provider: the format is the same both ways, so data directories written before this file
// system existed (and by the ldb plugin) still open, and the other way round.
#include "storage/encrypted_fs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "crypto/random.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/env_encryption.h"
#include "storage/key_dictionary.h"
#include "storage/test_providers.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class EncryptedFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-encfs-" + *RandomHex(6));
    fs::create_directories(root_);
    auto dict = KeyDictionary::Create((root_ / "keys.dict").string(), "c-1", provider_, 1000);
    ASSERT_TRUE(dict.ok()) << dict.status();
    std::shared_ptr<KeyDictionary> shared = *std::move(dict);
    enc_ = std::make_shared<KeywardEncryptionProvider>(shared);
    stock_ = rocksdb::NewEncryptedFS(rocksdb::FileSystem::Default(), enc_);
    ours_ = NewKeywardEncryptedFs(rocksdb::FileSystem::Default(), enc_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Opens the database under `fs`, checks every key written so far, writes `count` more (in
  // WAL and, after a flush, an SST) and closes it.
  void Round(const std::shared_ptr<rocksdb::FileSystem>& fs, int first, int count) {
    std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    rocksdb::Options opts;
    opts.env = env.get();
    opts.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status st = rocksdb::DB::Open(opts, (root_ / "db").string(), &raw);
    ASSERT_TRUE(st.ok()) << st.ToString();
    std::unique_ptr<rocksdb::DB> db(raw);
    for (int i = 0; i < first; ++i) {
      std::string v;
      ASSERT_TRUE(db->Get({}, "key" + std::to_string(i), &v).ok()) << i;
      EXPECT_EQ(v, std::string(100, static_cast<char>('a' + i % 26)));
    }
    for (int i = first; i < first + count; ++i) {
      ASSERT_TRUE(
          db->Put({}, "key" + std::to_string(i), std::string(100, static_cast<char>('a' + i % 26)))
              .ok());
    }
    ASSERT_TRUE(db->Flush({}).ok());
    for (int i = first + count; i < first + 2 * count; ++i) {  // these stay in the WAL only
      ASSERT_TRUE(
          db->Put({}, "key" + std::to_string(i), std::string(100, static_cast<char>('a' + i % 26)))
              .ok());
    }
    ASSERT_TRUE(db->Close().ok());
  }

  TestProvider provider_{"key-a"};
  fs::path root_;
  std::shared_ptr<rocksdb::EncryptionProvider> enc_;
  std::shared_ptr<rocksdb::FileSystem> stock_, ours_;
};

TEST_F(EncryptedFsTest, StockAndOursReadEachOthersDatabases) {
  Round(stock_, 0, 500);     // as written by keyward before this file system
  Round(ours_, 1000, 500);   // opens it, writes WAL and SST
  Round(stock_, 2000, 500);  // RocksDB's own file system (the ldb plugin) reads ours
  Round(ours_, 3000, 0);
}

TEST_F(EncryptedFsTest, BigAppendsAreEncryptedInPiecesAndTheCallersBufferIsUntouched) {
  const std::string path = (root_ / "big").string();
  std::string data(3 * (1 << 20) + 5, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  const std::string copy = data;
  {
    std::unique_ptr<rocksdb::FSWritableFile> f;
    ASSERT_TRUE(ours_->NewWritableFile(path, {}, &f, nullptr).ok());
    ASSERT_TRUE(f->Append(rocksdb::Slice(data.data(), 10), {}, nullptr).ok());
    ASSERT_TRUE(f->Append(rocksdb::Slice(data.data() + 10, data.size() - 10), {}, nullptr).ok());
    EXPECT_EQ(f->GetFileSize({}, nullptr), data.size());
    ASSERT_TRUE(f->Close({}, nullptr).ok());
  }
  EXPECT_EQ(data, copy);
  std::ifstream in(path, std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(raw.size(), data.size() + kFileHeaderSize);
  EXPECT_EQ(raw.substr(0, 8), "KWENCF01");
  EXPECT_EQ(raw.find(data.substr(1 << 20, 64)), std::string::npos) << "plaintext on disk";
  std::unique_ptr<rocksdb::FSSequentialFile> r;
  ASSERT_TRUE(stock_->NewSequentialFile(path, {}, &r, nullptr).ok());
  std::string back(data.size(), '\0');
  rocksdb::Slice got;
  ASSERT_TRUE(r->Read(back.size(), {}, &got, back.data(), nullptr).ok());
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got.compare(rocksdb::Slice(data)) == 0);
}

}  // namespace
}  // namespace keyward
