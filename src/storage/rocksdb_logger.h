#pragma once
// RocksDB's info LOG bypasses the encrypted file system and can name user keys, so no cluster
// writes one to disk: this logger forwards warnings and errors to keyward's stderr (tagged with
// the cluster id) and drops the chatty info level.

#include <memory>
#include <string>

#include "rocksdb/env.h"

namespace keyward {

std::shared_ptr<rocksdb::Logger> NewStderrRocksLogger(std::string tag);

}  // namespace keyward
