// The manifest's data-key section (mariadb backups carry the cluster's data keys, sealed under
// the backup key, so they restore after the cluster is crypto-shredded).

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "backup/backup_format.h"
#include "crypto/random.h"
#include "storage/test_providers.h"
#include "util/bytes.h"

namespace keyward {
namespace {

BackupDataKey DataKey(uint32_t id) {
  BackupDataKey d;
  d.id = id;
  d.created_unix = 1700000000 + id;
  d.key = std::make_shared<const SecretBytes>(*RandomSecret(kBackupKeySize));
  return d;
}

BackupManifest WithDataKeys(MasterKeyProvider& p, const SecretBytes& key) {
  BackupManifest m;
  m.backup_id = "b-1";
  m.cluster_id = "c-1";
  m.project_id = "p-1";
  m.key_record_id = "k-1";
  m.created_at = 1700000000;
  m.chunk_size = 4;
  BackupFileEntry stream;
  stream.name = "mariadb-backup.mbstream";
  stream.size = 5;
  stream.sha256_hex = std::string(64, 'c');
  stream.chunks = 2;
  m.files = {stream};
  m.data_keys = {DataKey(1), DataKey(2), DataKey(4)};
  m.current_data_key = 4;
  m.wrapped_key = *p.Wrap(key, BackupWrapContext(m.backup_id));
  return m;
}

TEST(BackupDataKeysTest, RoundTripKeepsIdsDatesBytesAndTheCurrentKey) {
  TestProvider p("key-a");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  BackupManifest m = WithDataKeys(p, key);
  auto sealed = SealBackupManifest(m, key);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  auto opened = OpenBackupManifest(*sealed, "b-1", p);
  ASSERT_TRUE(opened.ok()) << opened.status();
  const BackupManifest& got = opened->manifest;
  ASSERT_EQ(got.data_keys.size(), 3u);
  EXPECT_EQ(got.current_data_key, 4u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got.data_keys[i].id, m.data_keys[i].id);
    EXPECT_EQ(got.data_keys[i].created_unix, m.data_keys[i].created_unix);
    ASSERT_TRUE(got.data_keys[i].key);
    EXPECT_TRUE(got.data_keys[i].key->Equals(*m.data_keys[i].key));
    // Neither the bytes nor their hex are in the sealed manifest.
    EXPECT_EQ(sealed->find(std::string(m.data_keys[i].key->view())), std::string::npos);
    EXPECT_EQ(sealed->find(HexEncode(m.data_keys[i].key->view())), std::string::npos);
  }
}

TEST(BackupDataKeysTest, AKvManifestHasNoDataKeys) {
  TestProvider p("key-a");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  BackupManifest m = WithDataKeys(p, key);
  m.data_keys.clear();
  m.current_data_key = 0;
  auto opened = OpenBackupManifest(*SealBackupManifest(m, key), "b-1", p);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(opened->manifest.data_keys.empty());
}

TEST(BackupDataKeysTest, EveryFlippedByteIsRefused) {
  TestProvider p("key-a");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  std::string sealed = *SealBackupManifest(WithDataKeys(p, key), key);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] ^= 0x01;
    auto opened = OpenBackupManifest(bad, "b-1", p);
    ASSERT_FALSE(opened.ok()) << "byte " << i << " flipped was accepted";
  }
}

TEST(BackupDataKeysTest, AManifestSealedUnderAnotherBackupKeyIsRefused) {
  TestProvider p("key-a");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  SecretBytes other = *RandomSecret(kBackupKeySize);
  BackupManifest m = WithDataKeys(p, key);
  auto opened = OpenBackupManifest(*SealBackupManifest(m, other), "b-1", p);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
}

TEST(BackupDataKeysTest, MalformedSectionsAreRefused) {
  auto body = [](nlohmann::json keys, nlohmann::json current) {
    nlohmann::json j = {{"backup_id", "b-1"},
                        {"cluster_id", "c-1"},
                        {"project_id", "p-1"},
                        {"key_record_id", "k-1"},
                        {"created_at", 1},
                        {"chunk_size", 4},
                        {"files", nlohmann::json::array()}};
    if (!keys.is_null()) j["data_keys"] = keys;
    if (!current.is_null()) j["current_data_key"] = current;
    return j.dump();
  };
  const std::string hex(64, 'a');
  auto entry = [&](uint64_t id, std::string k) {
    return nlohmann::json{{"id", id}, {"created", 1}, {"key", k}};
  };
  EXPECT_TRUE(ParseBackupManifestBody(body(nlohmann::json::array({entry(1, hex)}), 1)).ok());
  // Keys without a current one, a current one without keys, an empty list.
  EXPECT_FALSE(ParseBackupManifestBody(body(nlohmann::json::array({entry(1, hex)}), nullptr)).ok());
  EXPECT_FALSE(ParseBackupManifestBody(body(nullptr, 1)).ok());
  EXPECT_FALSE(ParseBackupManifestBody(body(nlohmann::json::array(), 1)).ok());
  // The current key missing, a duplicate id, id 0, a short or non-hex key.
  EXPECT_FALSE(ParseBackupManifestBody(body(nlohmann::json::array({entry(1, hex)}), 2)).ok());
  EXPECT_FALSE(
      ParseBackupManifestBody(body(nlohmann::json::array({entry(1, hex), entry(1, hex)}), 1)).ok());
  EXPECT_FALSE(ParseBackupManifestBody(body(nlohmann::json::array({entry(0, hex)}), 0)).ok());
  EXPECT_FALSE(
      ParseBackupManifestBody(body(nlohmann::json::array({entry(1, hex.substr(2))}), 1)).ok());
  EXPECT_FALSE(
      ParseBackupManifestBody(body(nlohmann::json::array({entry(1, std::string(64, 'G'))}), 1))
          .ok());
}

TEST(BackupDataKeysTest, SealRefusesAnIncompleteSection) {
  TestProvider p("key-a");
  SecretBytes key = *RandomSecret(kBackupKeySize);
  BackupManifest m = WithDataKeys(p, key);
  m.current_data_key = 3;  // not among them
  EXPECT_FALSE(SealBackupManifest(m, key).ok());
  m = WithDataKeys(p, key);
  m.data_keys[1].key = std::make_shared<const SecretBytes>(*RandomSecret(16));
  EXPECT_FALSE(SealBackupManifest(m, key).ok());
}

}  // namespace
}  // namespace keyward
