#include "storage/rocksdb_logger.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "util/log.h"

namespace keyward {
namespace {

class StderrRocksLogger : public rocksdb::Logger {
 public:
  explicit StderrRocksLogger(std::string tag)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), tag_(std::move(tag)) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    vsnprintf(buf, sizeof(buf), format, ap);
    Log(LevelFor(level, buf), "rocksdb", buf, {{"store", tag_}});
  }

 private:
  // RocksDB's level, but for messages that are warnings only to RocksDB: a checkpoint (every
  // backup takes one) disables file deletions and then, while listing the live files, disables
  // them again (legal nesting, counted), and re-enables them twice; RocksDB warns at the inner
  // pair ("[db_impl_files.cc:49] File Deletions Disabled, but already disabled. Counter: 2").
  // Debug, not a warning an operator would chase.
  static LogLevel LevelFor(rocksdb::InfoLogLevel level, const char* message) {
    for (const char* nested : {"File Deletions Disabled, but already disabled",
                               "File Deletions Enable, but not really enabled"}) {
      if (strstr(message, nested) != nullptr) return LogLevel::kDebug;
    }
    return level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? LogLevel::kError : LogLevel::kWarn;
  }

  std::string tag_;
};

}  // namespace

std::shared_ptr<rocksdb::Logger> NewStderrRocksLogger(std::string tag) {
  return std::make_shared<StderrRocksLogger>(std::move(tag));
}

}  // namespace keyward
