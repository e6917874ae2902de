#include "mariadb/mariadb_instance.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <sstream>

namespace keyward {
namespace {

MariadbInstanceSpec Spec() {
  MariadbInstanceSpec spec;
  spec.data_dir = "/c/data";
  spec.run_dir = "/c/run";
  spec.port = 4406;
  spec.plugin_dir = "/opt/keyward";
  spec.key_socket = "/c/keys/mariadb.sock";
  return spec;
}

std::set<std::string> Lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.insert(line);
  return out;
}

TEST(MariadbOptionFile, HasEveryAtRestEncryptionOption) {
  auto lines = Lines(RenderOptionFile(Spec()));
  for (const char* want : {"innodb_encrypt_tables=FORCE",
                           "innodb_encrypt_log=ON",
                           "innodb_encrypt_temporary_tables=ON",
                           "encrypt_tmp_disk_tables=ON",
                           "encrypt_tmp_files=ON",
                           "encrypt_binlog=ON",
                           "log_bin=mariadb-bin",
                           "aria_encrypt_tables=ON",
                           "enforce_storage_engine=InnoDB",
                           "innodb_encryption_rotate_key_age=1",
                           "skip-name-resolve",
                           "bind-address=127.0.0.1",
                           "port=4406",
                           "general_log=0",
                           "slow_query_log=0",
                           "plugin_dir=/opt/keyward",
                           "plugin_load_add=keyward_key_management.so",
                           "keyward_key_management=FORCE",
                           "keyward_key_management_socket=/c/keys/mariadb.sock",
                           "tmpdir=/c/run/tmp",
                           "datadir=/c/data"}) {
    EXPECT_TRUE(lines.count(want)) << want;
  }
  // Engine substitution must stay allowed, or ENGINE=Aria fails instead of becoming InnoDB.
  std::string text = RenderOptionFile(Spec());
  EXPECT_EQ(text.find("NO_ENGINE_SUBSTITUTION"), std::string::npos);
  EXPECT_NE(text.find("\nsql_mode="), std::string::npos);
  EXPECT_EQ(text.find("log_error"), std::string::npos);  // stderr → keyward's log
  size_t threads = text.find("innodb_encryption_threads=");
  ASSERT_NE(threads, std::string::npos);
  EXPECT_GT(std::stoi(text.substr(threads + 26)), 0);
}

TEST(MariadbOptionFile, PlaintextBaselineHasNoPluginAndTlsOnlyWhenGiven) {
  MariadbInstanceSpec spec = Spec();
  spec.encrypted = false;
  std::string text = RenderOptionFile(spec);
  EXPECT_EQ(text.find("keyward_key_management"), std::string::npos);
  EXPECT_EQ(text.find("encrypt"), std::string::npos);
  EXPECT_EQ(text.find("ssl_"), std::string::npos);
  EXPECT_EQ(text.find("require_secure_transport"), std::string::npos);
  spec.tls_cert = "/c/tls/cert.pem";
  spec.tls_key = "/c/tls/key.pem";
  spec.tls_ca = "/c/tls/ca.pem";
  auto lines = Lines(RenderOptionFile(spec));
  EXPECT_TRUE(lines.count("ssl_cert=/c/tls/cert.pem"));
  EXPECT_TRUE(lines.count("ssl_key=/c/tls/key.pem"));
  EXPECT_TRUE(lines.count("ssl_ca=/c/tls/ca.pem"));
  // With TLS, plaintext TCP clients are refused.
  EXPECT_TRUE(lines.count("require_secure_transport=ON"));
}

TEST(MariadbOptionFile, FilesOnlyInAPrivateDirectory) {
  auto lines = Lines(RenderOptionFile(Spec()));
  EXPECT_TRUE(lines.count("secure_file_priv=/c/run/files"));
  EXPECT_EQ(MariadbSecureFileDir(Spec()), "/c/run/files");
}

// Extra [mariadbd] lines come before keyward's encryption lines (for a repeated option the
// later line wins), a trailing [sst] group stays at the end, and protected names are refused.
TEST(MariadbOptionFile, ExtraOptionsCannotOverrideEncryption) {
  MariadbInstanceSpec spec = Spec();
  spec.extra_options = {"innodb_buffer_pool_size=64M",
                        "wsrep_on=ON",
                        "binlog_format=ROW",
                        "wsrep_sst_auth=root:",
                        "[sst]",
                        "encrypt=3",
                        "tca=/c/ca.pem"};
  ASSERT_TRUE(ValidateExtraOptions(spec).ok()) << ValidateExtraOptions(spec);
  std::string text = RenderOptionFile(spec);
  size_t extra = text.find("innodb_buffer_pool_size=64M");
  size_t encrypt = text.find("innodb_encrypt_tables=FORCE");
  size_t sst = text.find("\n[sst]\n");
  ASSERT_NE(extra, std::string::npos);
  ASSERT_NE(encrypt, std::string::npos);
  ASSERT_NE(sst, std::string::npos);
  EXPECT_LT(extra, encrypt);
  EXPECT_LT(text.find("wsrep_on=ON"), encrypt);
  EXPECT_GT(sst, text.find("innodb_encryption_rotation_iops"));
  EXPECT_GT(text.find("encrypt=3"), sst);

  for (const char* bad : {"innodb_encrypt_tables=OFF",
                          "innodb-encrypt-tables=0",
                          "loose_innodb_encrypt_log=OFF",
                          "skip-encrypt-binlog",
                          "innodb_encryption_threads=0",
                          "enforce_storage_engine=",
                          "secure_file_priv=",
                          "general_log_file=/tmp/x",
                          "general-log=1",
                          "log_output=TABLE",
                          "plugin_load_add=file_key_management",
                          "keyward_key_management=OFF",
                          "user=mysql",
                          "skip-grant-tables",
                          "init_file=/tmp/x.sql",
                          "datadir=/tmp",
                          "  Socket = /tmp/s",
                          "tmpdir=/tmp",
                          "sql_mode=NO_ENGINE_SUBSTITUTION",
                          "innodb_encrypt_tab=OFF",
                          "init_fil=/tmp/x.sql",
                          "log_outp=TABLE",
                          "innodb_data_home=/tmp"}) {
    spec.extra_options = {bad};
    absl::Status st = ValidateExtraOptions(spec);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  spec.extra_options = {"max_connections=10\ninnodb_encrypt_tables=OFF"};
  EXPECT_NE(ValidateExtraOptions(spec).message().find("line break"), absl::string_view::npos);
  spec.extra_options = {"[mariadbd]", "innodb_encrypt_tables=OFF"};
  EXPECT_FALSE(ValidateExtraOptions(spec).ok());
  spec.extra_options = {"!include /tmp/evil.cnf"};
  EXPECT_FALSE(ValidateExtraOptions(spec).ok());
  spec.extra_options = {"innodb_encrypt_tables=OFF"};
  spec.run_dir = ::testing::TempDir() + "/kw-extra-refused";
  EXPECT_FALSE(WriteOptionFile(spec).ok());
  EXPECT_FALSE(std::filesystem::exists(spec.run_dir + "/my.cnf"));
}

TEST(MariadbArgv, DefaultsFileFirstAndUserRootOnlyAsRoot) {
  auto argv = MariadbdArgv(Spec());
  ASSERT_GE(argv.size(), 2u);
  EXPECT_EQ(argv[0], "/usr/sbin/mariadbd");
  EXPECT_EQ(argv[1], "--defaults-file=/c/run/my.cnf");
  bool has_user_root = argv.size() > 2 && argv[2] == "--user=root";
  EXPECT_EQ(has_user_root, geteuid() == 0);
}

TEST(MariadbAccounts, NativeHashMatchesMariadbAndNamesAreChecked) {
  // SELECT PASSWORD('secret') in MariaDB 10.11.
  EXPECT_EQ(MariadbNativePasswordHash("secret"), "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
  EXPECT_TRUE(ValidateMariadbAdminUser("admin").ok());
  EXPECT_FALSE(ValidateMariadbAdminUser("").ok());
  EXPECT_FALSE(ValidateMariadbAdminUser("root").ok());
  EXPECT_FALSE(ValidateMariadbAdminUser("a'b").ok());
  EXPECT_FALSE(ValidateMariadbAdminUser(std::string(33, 'a')).ok());
}

}  // namespace
}  // namespace keyward
