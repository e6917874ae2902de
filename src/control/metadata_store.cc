#include "control/metadata_store.h"

#include <sqlite3.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

// Numbered migrations; the schema version is PRAGMA user_version. Append, never edit.
const char* const kMigrations[] = {
    "CREATE TABLE clusters ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  state TEXT NOT NULL,"
    "  port INTEGER NOT NULL,"
    "  password_sha256 TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL)",
};

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  std::string Text(int col) {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

class SqliteMetadataStore : public MetadataStore {
 public:
  explicit SqliteMetadataStore(sqlite3* db) : db_(db) {}
  ~SqliteMetadataStore() override { sqlite3_close(db_); }

  absl::Status Migrate() {
    RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
    RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
    RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON"));
    sqlite3_busy_timeout(db_, 5000);
    Statement v(db_, "PRAGMA user_version");
    if (!v.ok() || sqlite3_step(v.get()) != SQLITE_ROW) return Error("read schema version");
    int version = sqlite3_column_int(v.get(), 0);
    int target = static_cast<int>(std::size(kMigrations));
    if (version > target) {
      return absl::FailedPreconditionError(absl::StrCat(
          "metadata schema version ", version, " is newer than this keyward (", target,
          "); run the newer keyward"));
    }
    for (int i = version; i < target; ++i) {
      RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
      absl::Status st = Exec(kMigrations[i]);
      if (st.ok()) st = Exec(absl::StrCat("PRAGMA user_version=", i + 1).c_str());
      if (!st.ok()) {
        Exec("ROLLBACK").IgnoreError();
        return st;
      }
      RETURN_IF_ERROR(Exec("COMMIT"));
    }
    return absl::OkStatus();
  }

  absl::Status InsertCluster(const ClusterRecord& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement s(db_,
                "INSERT INTO clusters(id,name,state,port,password_sha256,created_at) "
                "VALUES(?,?,?,?,?,?)");
    if (!s.ok()) return Error("prepare insert");
    s.Bind(1, r.id);
    s.Bind(2, r.name);
    s.Bind(3, r.state);
    s.Bind(4, static_cast<int64_t>(r.port));
    s.Bind(5, r.password_sha256_hex);
    s.Bind(6, r.created_at);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(absl::StrCat("a cluster named '", r.name, "' already exists"));
    }
    if (rc != SQLITE_DONE) return Error("insert cluster");
    return absl::OkStatus();
  }

  absl::Status UpdateCluster(const ClusterRecord& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement s(db_, "UPDATE clusters SET state=?, port=? WHERE id=?");
    if (!s.ok()) return Error("prepare update");
    s.Bind(1, r.state);
    s.Bind(2, static_cast<int64_t>(r.port));
    s.Bind(3, r.id);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return Error("update cluster");
    if (sqlite3_changes(db_) == 0) return absl::NotFoundError(absl::StrCat("cluster ", r.id, " not found"));
    return absl::OkStatus();
  }

  absl::Status DeleteCluster(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement s(db_, "DELETE FROM clusters WHERE id=?");
    if (!s.ok()) return Error("prepare delete");
    s.Bind(1, id);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return Error("delete cluster");
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<ClusterRecord>> GetCluster(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement s(db_, "SELECT id,name,state,port,password_sha256,created_at FROM clusters WHERE id=?");
    if (!s.ok()) return Error("prepare get");
    s.Bind(1, id);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) return Error("get cluster");
    return Row(s);
  }

  absl::StatusOr<std::vector<ClusterRecord>> ListClusters() override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement s(db_,
                "SELECT id,name,state,port,password_sha256,created_at FROM clusters "
                "ORDER BY created_at, id");
    if (!s.ok()) return Error("prepare list");
    std::vector<ClusterRecord> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(Row(s));
    if (rc != SQLITE_DONE) return Error("list clusters");
    return out;
  }

 private:
  static ClusterRecord Row(Statement& s) {
    ClusterRecord r;
    r.id = s.Text(0);
    r.name = s.Text(1);
    r.state = s.Text(2);
    r.port = sqlite3_column_int(s.get(), 3);
    r.password_sha256_hex = s.Text(4);
    r.created_at = sqlite3_column_int64(s.get(), 5);
    return r;
  }

  absl::Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown";
      sqlite3_free(err);
      return absl::InternalError(absl::StrCat("metadata store: ", msg));
    }
    return absl::OkStatus();
  }

  absl::Status Error(const char* what) {
    return absl::InternalError(absl::StrCat("metadata store: ", what, ": ", sqlite3_errmsg(db_)));
  }

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteMetadataStore(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open metadata database ", path, ": ", msg));
  }
  auto store = std::make_unique<SqliteMetadataStore>(db);
  absl::Status st = store->Migrate();
  if (!st.ok()) return st;
  return store;
}

}  // namespace keyward
