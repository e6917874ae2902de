#include "mariadb/mariadb_backup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "crypto/random.h"
#include "mariadb/key_service.h"
#include "storage/key_dictionary.h"
#include "storage/test_providers.h"
#include "util/file_util.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

TEST(RewriteBackupMyCnf, PointsPluginDirAndKeySocketAtTheRestore) {
  const std::string in =
      "[mysqld]\ninnodb_page_size=16384\nplugin_dir=\"/old/plugins\"\n"
      "plugin_load=keyward_key_management=keyward_key_management\n"
      "keyward_key_management_socket=/old/keys.sock\ninnodb_encrypt_log=1\n";
  auto out = RewriteBackupMyCnf(in, "/new/plugins", "/new/keys.sock");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "[mysqld]\ninnodb_page_size=16384\nplugin_dir=\"/new/plugins\"\n"
            "plugin_load=keyward_key_management=keyward_key_management\n"
            "keyward_key_management_socket=/new/keys.sock\ninnodb_encrypt_log=1\n");
}

TEST(RewriteBackupMyCnf, AddsMissingLinesAndRefusesUnsafePaths) {
  auto out = RewriteBackupMyCnf("[mysqld]\n", "/p", "/s");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "[mysqld]\nplugin_dir=\"/p\"\nkeyward_key_management_socket=/s\n");
  EXPECT_FALSE(RewriteBackupMyCnf("", "/p\nplugin_load=evil", "/s").ok());
  EXPECT_FALSE(RewriteBackupMyCnf("", "/p", "/s\"").ok());
  EXPECT_FALSE(RewriteBackupMyCnf("", "", "/s").ok());
}

// The backup pipeline end to end with stand-ins for mariadb-backup and mbstream (shell scripts):
// what goes through the pipe comes back byte for byte, sealed in between.
class MariadbBackupPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-mdb-backup-" + *RandomHex(8));
    fs::create_directories(root_);
    auto d = KeyDictionary::Create((root_ / "keys.dict").string(), "c-1", provider_, 1000);
    ASSERT_TRUE(d.ok()) << d.status();
    dict_ = *std::move(d);
    keys_ = std::make_unique<MariadbKeyService>(*dict_, [](pid_t) { return false; });
    auto dest = LocalDirectoryDestination::New((root_ / "dest").string());
    ASSERT_TRUE(dest.ok());
    dest_ = *std::move(dest);
    payload_ = (root_ / "payload").string();
    // --backup streams the payload; --prepare checks backup-my.cnf was pointed at the restore.
    Script("mariadb-backup",
           "case \"$*\" in *--backup*) exec cat '" + payload_ +
               "';; esac\n"
               "for a; do case $a in --target-dir=*) d=${a#--target-dir=};; esac; done\n"
               "grep -q '^keyward_key_management_socket=" +
               (root_ / "new" / "keys.sock").string() + "$' \"$d/backup-my.cnf\" || exit 4\n");
    // mbstream -x (in the data dir): keeps the stream and writes a backup-my.cnf as the real one
    // extracts.
    Script("mbstream",
           "cat > stream.out || exit 5\n"
           "printf 'plugin_dir=\"/old\"\\nkeyward_key_management_socket=/old.sock\\n' > "
           "backup-my.cnf\n");
    tools_.mariadb_backup = (root_ / "mariadb-backup").string();
    tools_.mbstream = (root_ / "mbstream").string();
  }
  void TearDown() override {
    keys_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void Script(const std::string& name, const std::string& body) {
    std::string path = (root_ / name).string();
    ASSERT_TRUE(WriteFileAtomically(path, "#!/bin/sh\n" + body, 0700).ok());
  }
  void WritePayload(const std::string& bytes) {
    ASSERT_TRUE(WriteFileAtomically(payload_, bytes, 0600).ok());
  }
  MariadbBackupJob Job(const std::string& id) {
    MariadbBackupJob job;
    job.backup_id = id;
    job.cluster_id = "c-1";
    job.project_id = "p-1";
    job.key_record_id = "k-1";
    job.created_at = 1000;
    job.chunk_size = 4096;
    job.instance.data_dir = (root_ / "old" / "data").string();
    job.instance.run_dir = (root_ / "old" / "run").string();
    job.tools = tools_;
    return job;
  }
  MariadbRestoreJob Restore(const std::string& id) {
    MariadbRestoreJob job;
    job.backup_id = id;
    job.target.data_dir = (root_ / "new" / "data").string();
    job.target.run_dir = (root_ / "new" / "run").string();
    job.target.plugin_dir = "/plugins";
    job.target.key_socket = (root_ / "new" / "keys.sock").string();
    job.tools = tools_;
    return job;
  }
  std::string Restored() {
    auto s = ReadFileToString((root_ / "new" / "data" / "stream.out").string(), 1 << 24);
    return s.ok() ? *s : "<missing>";
  }
  // Whether any object in the destination holds `needle`.
  bool DestinationHolds(const std::string& needle) {
    for (const auto& e : fs::recursive_directory_iterator(root_ / "dest")) {
      if (!e.is_regular_file()) continue;
      auto s = ReadFileToString(e.path().string(), 1 << 24);
      if (s.ok() && s->find(needle) != std::string::npos) return true;
    }
    return false;
  }

  fs::path root_;
  TestProvider provider_{"k"};
  std::unique_ptr<KeyDictionary> dict_;
  std::unique_ptr<MariadbKeyService> keys_;
  std::unique_ptr<LocalDirectoryDestination> dest_;
  std::string payload_;
  MariadbTools tools_;
};

TEST_F(MariadbBackupPipeline, StreamComesBackByteForByteAndNeverInTheClear) {
  // Sizes around the chunk size: the last-chunk logic's edges.
  for (size_t size : {size_t{0}, size_t{100}, size_t{4096}, size_t{8192}, size_t{10000}}) {
    SCOPED_TRACE(size);
    std::string payload(size, 'x');
    if (size >= 21) payload.replace(0, 21, "CANARY-backup-my.cnf-");
    WritePayload(payload);
    std::string id = "b-" + std::to_string(size);
    auto summary = BackUpMariadb(Job(id), *keys_, provider_, *dest_, nullptr);
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->bytes, size);
    EXPECT_EQ(summary->objects_written, BackupChunkCount(size, 4096) + 1);
    if (size >= 21) {
      EXPECT_FALSE(DestinationHolds("CANARY-backup-my.cnf-"));
    }
    auto m = RestoreMariadbBackup(Restore(id), *keys_, provider_, *dest_, nullptr);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->files.size(), 1u);
    EXPECT_EQ(m->files[0].name, kMariadbStreamFileName);
    EXPECT_EQ(Restored(), payload);
    fs::remove_all(root_ / "new");
  }
}

TEST_F(MariadbBackupPipeline, AFlippedByteIsRefusedAndNothingStaysRestored) {
  WritePayload(std::string(10000, 'r'));
  ASSERT_TRUE(BackUpMariadb(Job("b-1"), *keys_, provider_, *dest_, nullptr).ok());
  std::string chunk = (root_ / "dest" / BackupChunkObject("b-1", 0, 1)).string();
  std::fstream f(chunk, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(40);
  f.put('\x5a');
  f.close();
  auto m = RestoreMariadbBackup(Restore("b-1"), *keys_, provider_, *dest_, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_NE(m.status().message().find("b-1"), std::string::npos) << m.status();
  EXPECT_FALSE(fs::exists(root_ / "new" / "data"));
}

TEST_F(MariadbBackupPipeline, ADroppedLastChunkIsRefused) {
  WritePayload(std::string(10000, 'r'));
  ASSERT_TRUE(BackUpMariadb(Job("b-1"), *keys_, provider_, *dest_, nullptr).ok());
  fs::remove(root_ / "dest" / BackupChunkObject("b-1", 0, 2));
  auto m = RestoreMariadbBackup(Restore("b-1"), *keys_, provider_, *dest_, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_FALSE(fs::exists(root_ / "new" / "data"));
}

TEST_F(MariadbBackupPipeline, AFailedMariadbBackupLeavesNoObjects) {
  Script("mariadb-backup",
         "head -c 9000 /dev/zero; echo 'mariadb-backup: cannot connect' >&2\n"
         "exit 3\n");
  auto summary = BackUpMariadb(Job("b-2"), *keys_, provider_, *dest_, nullptr);
  ASSERT_FALSE(summary.ok());
  EXPECT_NE(summary.status().message().find("cannot connect"), std::string::npos)
      << summary.status();
  auto left = dest_->List("b-2/");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
}

TEST_F(MariadbBackupPipeline, AFailedPrepareRemovesTheRestoredDataDir) {
  WritePayload("stream");
  ASSERT_TRUE(BackUpMariadb(Job("b-3"), *keys_, provider_, *dest_, nullptr).ok());
  MariadbRestoreJob job = Restore("b-3");
  job.target.key_socket = (root_ / "elsewhere.sock").string();  // the fake prepare refuses it
  auto m = RestoreMariadbBackup(job, *keys_, provider_, *dest_, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("--prepare"), std::string::npos) << m.status();
  EXPECT_FALSE(fs::exists(root_ / "new" / "data"));
}

// A restore as a new cluster: the backup's sealed manifest carries the source's data keys, so it
// restores with the source's dictionary gone; the new dictionary holds the same ids and bytes.
TEST_F(MariadbBackupPipeline, ANewClusterGetsTheBackupsDataKeysWithoutTheSourceDictionary) {
  ASSERT_TRUE(dict_->AddDataKey(2000).ok());
  SecretBytes key1 = dict_->Find(1)->key.Clone(), key2 = dict_->Find(2)->key.Clone();
  WritePayload(std::string(10000, 's'));
  MariadbBackupJob job = Job("b-4");
  job.dictionary = dict_.get();
  ASSERT_TRUE(BackUpMariadb(job, *keys_, provider_, *dest_, nullptr).ok());
  EXPECT_FALSE(DestinationHolds(std::string(key1.view())));
  fs::remove(root_ / "keys.dict");  // the source is crypto-shredded
  const std::string sql = (root_ / "bootstrap.sql").string();
  Script("mariadbd", "cat > '" + sql + "'\n");

  MariadbNewClusterRestore nj;
  nj.restore = Restore("b-4");
  nj.restore.target.mariadbd_path = (root_ / "mariadbd").string();
  nj.cluster_id = "c-2";
  nj.dictionary_path = (root_ / "new" / "keys.dict").string();
  nj.admin_password = SecretBytes::FromView("the-new-password");
  auto m = RestoreMariadbBackupAsNewCluster(nj, provider_, *dest_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Restored(), std::string(10000, 's'));
  auto restored = KeyDictionary::Open(nj.dictionary_path, "c-2", provider_);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->Current()->id, 2u);
  ASSERT_TRUE((*restored)->Find(1) && (*restored)->Find(2));
  EXPECT_TRUE((*restored)->Find(1)->key.Equals(key1));
  EXPECT_TRUE((*restored)->Find(2)->key.Equals(key2));
  // The admin password was set through the bootstrap, as its hash only.
  auto text = ReadFileToString(sql, 1 << 20);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_NE(text->find("UPDATE global_priv"), std::string::npos) << *text;
  EXPECT_NE(text->find(MariadbNativePasswordHash("the-new-password")), std::string::npos);
  EXPECT_EQ(text->find("the-new-password"), std::string::npos);
}

TEST_F(MariadbBackupPipeline, ANewClusterRestoreThatFailsLeavesNoDictionaryOrDataDir) {
  WritePayload("stream");
  MariadbBackupJob job = Job("b-5");
  job.dictionary = dict_.get();
  ASSERT_TRUE(BackUpMariadb(job, *keys_, provider_, *dest_, nullptr).ok());
  MariadbNewClusterRestore nj;
  nj.restore = Restore("b-5");
  nj.restore.target.key_socket = (root_ / "elsewhere.sock").string();  // the fake prepare refuses
  nj.cluster_id = "c-2";
  nj.dictionary_path = (root_ / "new" / "keys.dict").string();
  nj.admin_password = SecretBytes::FromView("pw");
  auto m = RestoreMariadbBackupAsNewCluster(nj, provider_, *dest_, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("nothing was restored"), std::string::npos) << m.status();
  EXPECT_FALSE(fs::exists(nj.dictionary_path));
  EXPECT_FALSE(fs::exists(root_ / "new" / "data"));
}

TEST_F(MariadbBackupPipeline, ABackupWithoutDataKeysIsNotRestoredAsANewCluster) {
  WritePayload("stream");
  ASSERT_TRUE(BackUpMariadb(Job("b-6"), *keys_, provider_, *dest_, nullptr).ok());
  MariadbNewClusterRestore nj;
  nj.restore = Restore("b-6");
  nj.cluster_id = "c-2";
  nj.dictionary_path = (root_ / "new" / "keys.dict").string();
  nj.admin_password = SecretBytes::FromView("pw");
  auto m = RestoreMariadbBackupAsNewCluster(nj, provider_, *dest_, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("data keys"), std::string::npos) << m.status();
  EXPECT_FALSE(fs::exists(nj.dictionary_path));
  EXPECT_FALSE(fs::exists(root_ / "new" / "data"));
}

}  // namespace
}  // namespace keyward
