// ClusterRuntime serving a mariadb cluster with a real mariadbd (skipped loudly without MariaDB
// or the key plugin): open on create, data-key rotation reaching its dictionary, seal (process
// gone, port kept, keys dropped), reopen on the same port, shred (dictionary and files gone).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "control/cluster_runtime.h"
#include "crypto/random.h"
#include "kms/escrow/escrow_provider.h"
#include "mariadb/mariadb_supervisor.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

std::string PluginDir() {
  if (const char* v = getenv("KEYWARD_MARIADB_PLUGIN_DIR"); v && *v) return v;
  // build-*/tests/unit_tests → build-*/keyward_key_management.so
  return fs::read_symlink("/proc/self/exe").parent_path().parent_path().string();
}

TEST(ClusterRuntimeMariadbTest, OpenRotateSealReopenShred) {
  const std::string plugin_dir = PluginDir();
  if (access("/usr/sbin/mariadbd", X_OK) != 0 ||
      access((plugin_dir + "/keyward_key_management.so").c_str(), R_OK) != 0) {
    GTEST_SKIP() << "SKIPPED LOUDLY: needs /usr/sbin/mariadbd (mariadb-server) and "
                 << plugin_dir << "/keyward_key_management.so (libmariadbd-dev)";
  }
  fs::path root = fs::temp_directory_path() / ("kw-rt-sql-" + *RandomHex(6));
  fs::create_directories(root / "clusters");
  auto escrow = EscrowProvider::LoadOrCreate((root / "escrow.key").string());
  ASSERT_TRUE(escrow.ok()) << escrow.status();
  std::shared_ptr<MasterKeyProvider> provider(std::move(*escrow));
  auto resp = RespServer::New({});
  ASSERT_TRUE(resp.ok());
  ClusterRuntimeOptions ro;
  ro.data_dir = root.string();
  ro.data_key_rotation_seconds = 1;
  ro.mariadb_plugin_dir = plugin_dir;
  ClusterRuntime runtime(ro, **resp, SharedStorageResources::New(8 << 20, 16 << 20));
  runtime.SetEngineLookup([](const std::string&) { return ClusterEngine::kMariadb; });
  const std::string id = "c-rt-sql";
  const std::string hash(64, 'a');

  auto port = runtime.Open(id, hash, provider, 0, /*create=*/true, Durability::kAlways,
                           "admin-password-1");
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_TRUE(runtime.IsOpen(id));
  EXPECT_FALSE(runtime.Get(id).has_value()) << "no kv store behind a mariadb cluster";
  EXPECT_TRUE(
      WaitForMysqlGreeting("127.0.0.1", *port, std::chrono::seconds(5), nullptr).ok());
  std::shared_ptr<KeyDictionary> dict = runtime.Dictionary(id);
  ASSERT_NE(dict, nullptr);
  EXPECT_EQ(dict->Current()->id, 1u);

  // A rotation period passed: the mariadb cluster's dictionary gets its next data key (MariaDB's
  // next key version), on disk too.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  runtime.RotateDataKeys();
  EXPECT_EQ(dict->Current()->id, 2u);
  dict.reset();

  // Sealed: mariadbd gone, nothing answers on the port, the keys let go; the port stays its own.
  auto sealed = runtime.Seal(id, hash, *port, "sealed for the test", Durability::kAlways);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(*sealed, *port);
  EXPECT_FALSE(runtime.IsOpen(id));
  EXPECT_EQ(runtime.Dictionary(id), nullptr);
  EXPECT_FALSE(
      WaitForMysqlGreeting("127.0.0.1", *port, std::chrono::milliseconds(300), nullptr).ok());

  // Reopened from keys.dict (one unwrap) on the same port, with both data keys.
  auto reopened = runtime.Open(id, hash, provider, 0, /*create=*/false, Durability::kAlways);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*reopened, *port);
  ASSERT_NE(runtime.Dictionary(id), nullptr);
  EXPECT_EQ(runtime.Dictionary(id)->Current()->id, 2u);
  EXPECT_EQ(runtime.Dictionary(id)->size(), 2u);

  // Shredded: closed first, dictionary and files gone.
  ASSERT_TRUE(runtime.Shred(id).ok());
  EXPECT_FALSE(runtime.IsOpen(id));
  EXPECT_FALSE(fs::exists(root / "clusters" / id));
  EXPECT_FALSE(
      WaitForMysqlGreeting("127.0.0.1", *port, std::chrono::milliseconds(300), nullptr).ok());
  runtime.Shutdown();
  (*resp)->Stop();
  fs::remove_all(root);
}

}  // namespace
}  // namespace keyward
