#include "control/sqlite_db.h"

#include "absl/strings/str_cat.h"

namespace keyward {

std::string SqlRow::Text(int col) const {
  const unsigned char* t = sqlite3_column_text(s_, col);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(s_, col)))
           : std::string();
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open metadata database ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 10000);
  std::unique_ptr<SqliteDb> out(new SqliteDb(db));
  // A server must start on a full disk (clusters are then marked, not the server lost). In WAL
  // mode SQLite needs a 32 KiB -shm file to open at all, and it deletes -wal at close, so a full
  // disk refused even reads. Exclusive locking keeps the WAL index in memory (no -shm; one
  // server per data dir anyway), and a persistent -wal keeps its allocated pages across
  // restarts, so small metadata writes overwrite them in place instead of needing new space.
  int persist = 1;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  absl::Status st = out->ExecScript(
      "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
      "PRAGMA foreign_keys=ON;");
  if (!st.ok()) return st;
  return out;
}

SqliteDb::~SqliteDb() { sqlite3_close(db_); }

absl::Status SqliteDb::Error(const std::string& what, int rc) const {
  std::string msg = absl::StrCat("metadata store: ", what, ": ", sqlite3_errmsg(db_));
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return absl::AlreadyExistsError(msg);
  if ((rc & 0xff) == SQLITE_BUSY) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

absl::Status SqliteDb::ExecScript(const std::string& sql) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("metadata store: ", msg));
  }
  return absl::OkStatus();
}

absl::Status SqliteDb::Run(const std::string& sql, const std::vector<SqlValue>& params,
                           const std::function<void(const SqlRow&)>* on_row) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error("prepare", rc);
  for (size_t i = 0; i < params.size(); ++i) {
    int idx = static_cast<int>(i + 1);
    if (std::holds_alternative<int64_t>(params[i])) {
      sqlite3_bind_int64(stmt, idx, std::get<int64_t>(params[i]));
    } else if (std::holds_alternative<std::string>(params[i])) {
      const auto& s = std::get<std::string>(params[i]);
      sqlite3_bind_text(stmt, idx, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_null(stmt, idx);
    }
  }
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (on_row) (*on_row)(SqlRow(stmt));
  }
  absl::Status st = rc == SQLITE_DONE ? absl::OkStatus() : Error("statement", rc);
  sqlite3_finalize(stmt);
  return st;
}

absl::Status SqliteDb::Exec(const std::string& sql, const std::vector<SqlValue>& params) {
  return Run(sql, params, nullptr);
}

absl::Status SqliteDb::Query(const std::string& sql, const std::vector<SqlValue>& params,
                             const std::function<void(const SqlRow&)>& on_row) {
  return Run(sql, params, &on_row);
}

absl::Status SqliteDb::Transaction(const std::function<absl::Status()>& fn) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  absl::Status st = ExecScript("BEGIN IMMEDIATE");
  if (!st.ok()) return st;
  st = fn();
  if (st.ok()) st = ExecScript("COMMIT");
  if (!st.ok()) ExecScript("ROLLBACK").IgnoreError();
  return st;
}

}  // namespace keyward
