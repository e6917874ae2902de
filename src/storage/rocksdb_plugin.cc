// keyward's encrypted file system as a RocksDB plugin, so tools nobody here wrote (Debian's
// db_bench, ldb, sst_dump) read and write our format:
//
//   export KEYWARD_ESCROW_KEY_FILE=data/escrow.key KEYWARD_CLUSTER_ID=c-…
//   export KEYWARD_DICTIONARY=data/clusters/c-…/keys.dict
//   LD_PRELOAD=build/libkeyward_rocksdb_plugin.so ldb --db=data/clusters/c-…
//       --fs_uri='id=EncryptedFileSystem;provider=keyward' scan
//
// --fs_uri=KeywardEncryptedFileSystem is the file system the server itself uses (same format,
// appends encrypted without a copy per call; storage/encrypted_fs.h): bench/storage uses it.
//
// The dictionary is created when KEYWARD_DICTIONARY does not exist yet (a new db_bench
// database). The factory is registered from a static initializer because RocksDB cannot load
// plugins by itself; loading happens through LD_PRELOAD.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "kms/escrow/escrow_provider.h"
#include "rocksdb/utilities/object_registry.h"
#include "storage/encrypted_fs.h"
#include "storage/encryption_provider.h"
#include "storage/key_dictionary.h"

namespace keyward {
namespace {

std::string Env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

rocksdb::EncryptionProvider* NewPluginProvider(const std::string&,
                                               std::unique_ptr<rocksdb::EncryptionProvider>* guard,
                                               std::string* errmsg) {
  std::string key_file = Env("KEYWARD_ESCROW_KEY_FILE");
  std::string dict_path = Env("KEYWARD_DICTIONARY");
  std::string cluster_id = Env("KEYWARD_CLUSTER_ID", "plugin");
  if (key_file.empty() || dict_path.empty()) {
    *errmsg = "keyward plugin: set KEYWARD_ESCROW_KEY_FILE and KEYWARD_DICTIONARY";
    return nullptr;
  }
  auto escrow = EscrowProvider::LoadOrCreate(key_file);
  if (!escrow.ok()) {
    *errmsg = "keyward plugin: " + std::string(escrow.status().message());
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<KeyDictionary>> dict =
      access(dict_path.c_str(), F_OK) == 0
          ? KeyDictionary::Open(dict_path, cluster_id, **escrow)
          : KeyDictionary::Create(
                dict_path, cluster_id, **escrow,
                static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count()));
  if (!dict.ok()) {
    *errmsg = "keyward plugin: " + std::string(dict.status().message());
    return nullptr;
  }
  guard->reset(new KeywardEncryptionProvider(std::shared_ptr<KeyDictionary>(std::move(*dict))));
  return guard->get();
}

rocksdb::FileSystem* NewPluginFs(const std::string& uri,
                                 std::unique_ptr<rocksdb::FileSystem>* guard, std::string* errmsg) {
  std::unique_ptr<rocksdb::EncryptionProvider> provider;
  if (NewPluginProvider(uri, &provider, errmsg) == nullptr) return nullptr;
  *guard = NewKeywardEncryptedFs(rocksdb::FileSystem::Default(), std::move(provider));
  return guard->get();
}

struct Registrar {
  Registrar() {
    rocksdb::ObjectLibrary::Default()->AddFactory<rocksdb::EncryptionProvider>(
        KeywardEncryptionProvider::kClassName(), NewPluginProvider);
    rocksdb::ObjectLibrary::Default()->AddFactory<rocksdb::FileSystem>(kEncryptedFsName,
                                                                       NewPluginFs);
  }
};
const Registrar registrar;

}  // namespace
}  // namespace keyward
