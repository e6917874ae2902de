// The SQLite metadata store (sqlite_metadata_store.h): idempotency claims of API requests.
#include "absl/strings/str_cat.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward::metadata_internal {

absl::StatusOr<IdempotencyClaim> SqliteMetadataStore::ClaimIdempotent(
    const std::string& user_id, const std::string& key, const std::string& route,
    const std::string& body_sha256_hex, int64_t now, int64_t stale_after_s) {
  IdempotencyClaim out;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(db_->Exec(
        "INSERT OR IGNORE INTO idempotency_claims(user_id, key, route, body_sha256, state, "
        "created_at) VALUES(?,?,?,?,'running',?)",
        {user_id, key, route, body_sha256_hex, now}));
    if (db_->Changes() > 0) return absl::OkStatus();  // claimed
    std::string hash, state;
    int64_t created = 0;
    RETURN_IF_ERROR(db_->Query(
        "SELECT body_sha256, state, status, body, created_at FROM idempotency_claims WHERE "
        "user_id=? AND key=? AND route=?",
        {user_id, key, route}, [&](const SqlRow& r) {
          hash = r.Text(0);
          state = r.Text(1);
          out.response = StoredResponse{static_cast<int>(r.Int(2)), r.Text(3)};
          created = r.Int(4);
        }));
    if (hash != body_sha256_hex) {
      out.outcome = IdempotencyClaim::Outcome::kDifferentBody;
    } else if (state == "done") {
      out.outcome = IdempotencyClaim::Outcome::kReplay;
    } else if (now - created > stale_after_s) {
      RETURN_IF_ERROR(db_->Exec(
          "UPDATE idempotency_claims SET created_at=? WHERE user_id=? AND key=? AND route=?",
          {now, user_id, key, route}));
      out.outcome = IdempotencyClaim::Outcome::kClaimed;
    } else {
      out.outcome = IdempotencyClaim::Outcome::kRunning;
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteMetadataStore::FinishIdempotent(const std::string& user_id,
                                                   const std::string& key, const std::string& route,
                                                   const StoredResponse& response) {
  return db_->Exec(
      "UPDATE idempotency_claims SET state='done', status=?, body=? WHERE user_id=? AND key=? "
      "AND route=?",
      {int64_t{response.status}, response.body, user_id, key, route});
}

absl::Status SqliteMetadataStore::RefreshIdempotent(const std::string& user_id,
                                                    const std::string& key,
                                                    const std::string& route, int64_t now) {
  return db_->Exec(
      "UPDATE idempotency_claims SET created_at=? WHERE user_id=? AND key=? AND route=? AND "
      "state='running'",
      {now, user_id, key, route});
}

absl::Status SqliteMetadataStore::ReleaseIdempotent(const std::string& user_id,
                                                    const std::string& key,
                                                    const std::string& route) {
  return db_->Exec(
      "DELETE FROM idempotency_claims WHERE user_id=? AND key=? AND route=? AND "
      "state='running'",
      {user_id, key, route});
}

}  // namespace keyward::metadata_internal
