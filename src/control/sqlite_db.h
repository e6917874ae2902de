#pragma once
// A thin, thread-safe wrapper over one SQLite connection: prepared statements with typed
// binding, row reading, and transactions that roll back unless committed.

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

using SqlValue = std::variant<std::nullptr_t, int64_t, std::string>;

class SqlRow {
 public:
  explicit SqlRow(sqlite3_stmt* s) : s_(s) {}
  std::string Text(int col) const;
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3_stmt* s_;
};

class SqliteDb {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();

  // Runs `fn` inside BEGIN IMMEDIATE … COMMIT under the connection lock; rolls back on error.
  absl::Status Transaction(const std::function<absl::Status()>& fn);
  // Inside Transaction() or alone (then it is its own transaction).
  absl::Status Exec(const std::string& sql, const std::vector<SqlValue>& params = {});
  absl::Status Query(const std::string& sql, const std::vector<SqlValue>& params,
                     const std::function<void(const SqlRow&)>& on_row);
  int64_t Changes() const { return sqlite3_changes(db_); }
  absl::Status ExecScript(const std::string& sql);

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  absl::Status Error(const std::string& what, int rc) const;
  absl::Status Run(const std::string& sql, const std::vector<SqlValue>& params,
                   const std::function<void(const SqlRow&)>* on_row);

  sqlite3* db_;
  std::recursive_mutex mu_;
};

}  // namespace keyward
