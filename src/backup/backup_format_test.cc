#include "backup/backup_format.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"
#include "storage/test_providers.h"

namespace keyward {
namespace {

BackupManifest Manifest(MasterKeyProvider& p, const SecretBytes& key, const std::string& id) {
  BackupManifest m;
  m.backup_id = id;
  m.cluster_id = "c-1";
  m.project_id = "p-1";
  m.key_record_id = "k-1";
  m.created_at = 1700000000;
  m.chunk_size = 4;
  BackupFileEntry sst;  // in a shared file object, with its own key
  sst.name = "000001.sst";
  sst.size = 9;
  sst.sha256_hex = std::string(64, 'a');
  sst.chunks = 3;
  sst.object = "shared/c-1/" + std::string(32, 'f');
  sst.file_key = std::make_shared<const SecretBytes>(*RandomSecret(kBackupKeySize));
  BackupFileEntry current;  // the backup's own
  current.name = "CURRENT";
  current.size = 0;
  current.sha256_hex = std::string(64, 'b');
  current.chunks = 1;
  m.files = {sst, current};
  m.wrapped_key = *p.Wrap(key, BackupWrapContext(id));
  return m;
}

TEST(BackupFormatTest, ManifestRoundTripsAndNamesItsKey) {
  TestProvider p("key-a");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  auto sealed = SealBackupManifest(Manifest(p, key, "b-1"), key);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  auto opened = OpenBackupManifest(*sealed, "b-1", p);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(opened->key.Equals(key));
  EXPECT_EQ(opened->manifest.cluster_id, "c-1");
  ASSERT_EQ(opened->manifest.files.size(), 2u);
  EXPECT_EQ(opened->manifest.files[0].chunks, 3u);
  EXPECT_EQ(opened->manifest.files[0].object, "shared/c-1/" + std::string(32, 'f'));
  ASSERT_TRUE(opened->manifest.files[0].file_key);
  EXPECT_EQ(opened->manifest.files[0].file_key->size(), kBackupKeySize);
  EXPECT_TRUE(opened->manifest.files[1].object.empty());
  EXPECT_FALSE(opened->manifest.files[1].file_key);
  EXPECT_EQ(opened->manifest.wrapped_key.key_id, "key-a");
  // No key bytes in the clear.
  EXPECT_EQ(sealed->find(std::string(key.view())), std::string::npos);
}

TEST(BackupFormatTest, SharedObjectsMustBelongToTheManifestsClusterWithAWholeKey) {
  auto body = [](const std::string& object, const std::string& key) {
    return R"({"backup_id":"b-1","cluster_id":"c-1","project_id":"p","key_record_id":"k",)"
           R"("created_at":1,"chunk_size":4,"files":[{"name":"000001.sst","size":9,)"
           R"("sha256":"aa","chunks":3,"object":")" +
           object + R"(","key":")" + key + R"("}]})";
  };
  std::string hex(32, 'a'), key(64, '0');
  EXPECT_TRUE(ParseBackupManifestBody(body("shared/c-1/" + hex, key)).ok());
  EXPECT_FALSE(ParseBackupManifestBody(body("shared/c-2/" + hex, key)).ok());  // other cluster
  EXPECT_FALSE(ParseBackupManifestBody(body("shared/c-1/../" + hex, key)).ok());
  EXPECT_FALSE(ParseBackupManifestBody(body("b-2/data/" + hex, key)).ok());
  EXPECT_FALSE(ParseBackupManifestBody(body("shared/c-1/" + hex, key.substr(2))).ok());
  EXPECT_FALSE(ParseBackupManifestBody(body("shared/c-1/" + hex, std::string(64, 'g'))).ok());
}

TEST(BackupFormatTest, FileChunkBindsObjectSizeIndexAndLastFlag) {
  SecretBytes key = *RandomSecret(kBackupKeySize);
  std::string object = "shared/c-1/" + std::string(32, 'a');
  std::string sealed = *SealBackupFileChunk(key, object, 100, 2, true, "payload");
  auto ok = OpenBackupFileChunk(key, "b-1", "000001.sst", object, 100, 2, true, sealed);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->view(), "payload");
  std::string other = "shared/c-1/" + std::string(32, 'b');
  EXPECT_FALSE(OpenBackupFileChunk(key, "b-1", "000001.sst", other, 100, 2, true, sealed).ok());
  EXPECT_FALSE(OpenBackupFileChunk(key, "b-1", "000001.sst", object, 101, 2, true, sealed).ok());
  EXPECT_FALSE(OpenBackupFileChunk(key, "b-1", "000001.sst", object, 100, 1, true, sealed).ok());
  auto not_last = OpenBackupFileChunk(key, "b-1", "000001.sst", object, 100, 2, false, sealed);
  ASSERT_FALSE(not_last.ok());
  EXPECT_NE(not_last.status().message().find("failed authentication: chunk 2 of file 000001.sst "
                                             "(shared object " +
                                             object + ")"),
            std::string::npos)
      << not_last.status();
  // A backup's own chunk is not a shared object's, even under the same key.
  std::string own = *SealBackupChunk(key, "b-1", "000001.sst", 2, true, "payload");
  EXPECT_FALSE(OpenBackupFileChunk(key, "b-1", "000001.sst", object, 100, 2, true, own).ok());
}

TEST(BackupFormatTest, ManifestOfAnotherBackupIsRefused) {
  TestProvider p("key-a");
  SecretBytes k2 = *RandomSecret(kBackupKeySize);
  auto other = SealBackupManifest(Manifest(p, k2, "b-2"), k2);
  ASSERT_TRUE(other.ok());
  auto opened = OpenBackupManifest(*other, "b-1", p);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(opened.status().message().find("belongs to backup b-2"), std::string::npos)
      << opened.status();
}

TEST(BackupFormatTest, EveryFlippedManifestByteIsRefused) {
  TestProvider p("key-a");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  std::string sealed = *SealBackupManifest(Manifest(p, key, "b-1"), key);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] ^= 0x01;
    EXPECT_FALSE(OpenBackupManifest(bad, "b-1", p).ok()) << "byte " << i;
  }
}

TEST(BackupFormatTest, BackupWrappedByOneProviderDoesNotOpenWithAnother) {
  TestProvider a("key-a"), b("key-b");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  std::string sealed = *SealBackupManifest(Manifest(a, key, "b-1"), key);
  auto opened = OpenBackupManifest(sealed, "b-1", b);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("cannot unwrap the key of backup b-1"),
            std::string::npos)
      << opened.status();
  EXPECT_NE(opened.status().message().find("key-a"), std::string::npos) << opened.status();
}

TEST(BackupFormatTest, BackupOfACmekKeyCannotBeUnwrappedWithTheEscrowKey) {
  TestProvider cmek("cmek-key");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  std::string sealed = *SealBackupManifest(Manifest(cmek, key, "b-1"), key);
  auto dir = std::filesystem::temp_directory_path() / ("kw-escrow-" + *RandomHex(6));
  std::filesystem::create_directories(dir);
  auto escrow = EscrowProvider::LoadOrCreate((dir / "escrow.key").string());
  ASSERT_TRUE(escrow.ok());
  auto opened = OpenBackupManifest(sealed, "b-1", **escrow);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("cmek-key"), std::string::npos) << opened.status();
}

TEST(BackupFormatTest, ChunkBindsBackupFileIndexAndLastFlag) {
  SecretBytes key = *RandomSecret(kBackupKeySize);
  std::string sealed = *SealBackupChunk(key, "b-1", "000001.sst", 2, true, "payload");
  auto ok = OpenBackupChunk(key, "b-1", "000001.sst", 2, true, sealed);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->view(), "payload");
  EXPECT_FALSE(OpenBackupChunk(key, "b-2", "000001.sst", 2, true, sealed).ok());
  EXPECT_FALSE(OpenBackupChunk(key, "b-1", "000002.sst", 2, true, sealed).ok());
  EXPECT_FALSE(OpenBackupChunk(key, "b-1", "000001.sst", 1, true, sealed).ok());
  auto not_last = OpenBackupChunk(key, "b-1", "000001.sst", 2, false, sealed);
  ASSERT_FALSE(not_last.ok());
  EXPECT_NE(not_last.status().message().find("chunk 2 of file 000001.sst"), std::string::npos);
  EXPECT_FALSE(
      OpenBackupChunk(*RandomSecret(kBackupKeySize), "b-1", "000001.sst", 2, true, sealed).ok());
}

TEST(BackupFormatTest, UnsafeFileNamesAreRejected) {
  EXPECT_TRUE(IsSafeBackupFileName("MANIFEST-000005"));
  EXPECT_FALSE(IsSafeBackupFileName("../keys.dict"));
  EXPECT_FALSE(IsSafeBackupFileName(".."));
  EXPECT_FALSE(IsSafeBackupFileName("a/b"));
  EXPECT_FALSE(IsSafeBackupFileName(""));
  EXPECT_EQ(BackupChunkCount(0, 4), 1u);
  EXPECT_EQ(BackupChunkCount(8, 4), 2u);
  EXPECT_EQ(BackupChunkCount(9, 4), 3u);
}

}  // namespace
}  // namespace keyward
