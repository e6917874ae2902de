#include "mariadb/mariadb_instance.h"

#include <gtest/gtest.h>
#include <unistd.h>

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
  spec.tls_cert = "/c/tls/cert.pem";
  spec.tls_key = "/c/tls/key.pem";
  spec.tls_ca = "/c/tls/ca.pem";
  auto lines = Lines(RenderOptionFile(spec));
  EXPECT_TRUE(lines.count("ssl_cert=/c/tls/cert.pem"));
  EXPECT_TRUE(lines.count("ssl_key=/c/tls/key.pem"));
  EXPECT_TRUE(lines.count("ssl_ca=/c/tls/ca.pem"));
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
