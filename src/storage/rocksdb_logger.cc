#include "storage/rocksdb_logger.h"

#include <cstdarg>
#include <cstdio>

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
    LogWarn("rocksdb", buf, {{"store", tag_}});
  }

 private:
  std::string tag_;
};

}  // namespace

std::shared_ptr<rocksdb::Logger> NewStderrRocksLogger(std::string tag) {
  return std::make_shared<StderrRocksLogger>(std::move(tag));
}

}  // namespace keyward
