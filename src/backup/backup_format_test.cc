#include "backup/backup_format.h"

#include <gtest/gtest.h>

#include <filesystem>

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
  m.files = {{"000001.sst", 9, std::string(64, 'a'), 3}, {"CURRENT", 0, std::string(64, 'b'), 1}};
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
  EXPECT_EQ(opened->manifest.wrapped_key.key_id, "key-a");
  // No key bytes in the clear.
  EXPECT_EQ(sealed->find(std::string(key.view())), std::string::npos);
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
