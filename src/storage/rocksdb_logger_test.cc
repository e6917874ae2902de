#include "storage/rocksdb_logger.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/log.h"

namespace keyward {
namespace {

// RocksDB's warnings reach the server log as warnings, its errors as errors; the nested
// "deletions already disabled" every checkpoint (every backup) causes is debug only, so it never
// shows at the default level.
TEST(RocksLogger, NestedDeletionDisableIsDebugOtherWarningsStay) {
  std::vector<nlohmann::json> lines;
  SetLogSinkForTest([&](const std::string& line) { lines.push_back(nlohmann::json::parse(line)); });
  SetLogLevel(LogLevel::kDebug);
  auto logger = NewStderrRocksLogger("c-1");
  // As RocksDB 7.8 words them (ROCKS_LOG_WARN puts the source line first).
  rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, logger,
               "[db/db_impl/db_impl_files.cc:49] File Deletions Disabled, but already disabled. "
               "Counter: %d",
               2);
  rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, logger,
               "[db/db_impl/db_impl_files.cc:89] File Deletions Enable, but not really enabled. "
               "Counter: %d",
               1);
  rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, logger, "Stalling writes because of %s",
               "too many memtables");
  rocksdb::Log(rocksdb::InfoLogLevel::ERROR_LEVEL, logger, "Compaction error: %s", "IO error");
  rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, logger, "Flushed %d bytes", 10);  // dropped
  SetLogLevel(LogLevel::kInfo);
  rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, logger,
               "[db/db_impl/db_impl_files.cc:49] File Deletions Disabled, but already disabled. "
               "Counter: %d",
               3);
  SetLogSinkForTest(nullptr);

  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["level"], "debug");
  EXPECT_EQ(lines[0]["event"], "rocksdb");
  EXPECT_EQ(lines[0]["store"], "c-1");
  EXPECT_EQ(lines[1]["level"], "debug");
  EXPECT_EQ(lines[2]["level"], "warn");
  EXPECT_EQ(lines[2]["msg"], "Stalling writes because of too many memtables");
  EXPECT_EQ(lines[3]["level"], "error");
}

}  // namespace
}  // namespace keyward
