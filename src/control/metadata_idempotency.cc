// The SQLite metadata store (sqlite_metadata_store.h): idempotency claims of API requests.
#include "absl/strings/str_cat.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward::metadata_internal {
namespace {

absl::Status ClaimLost(const std::string& key, const std::string& route, int64_t generation) {
  return absl::FailedPreconditionError(
      absl::StrCat("the claim of Idempotency-Key '", key, "' for ", route, " (generation ",
                   generation, ") is no longer running: it was finished, released or taken over"));
}

}  // namespace

absl::StatusOr<IdempotencyClaim> SqliteMetadataStore::ClaimIdempotent(
    const std::string& user_id, const std::string& key, const std::string& route,
    const std::string& body_sha256_hex, int64_t now, int64_t stale_after_s) {
  IdempotencyClaim out;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(db_->Exec(
        "INSERT OR IGNORE INTO idempotency_claims(user_id, key, route, body_sha256, state, "
        "created_at) VALUES(?,?,?,?,'running',?)",
        {user_id, key, route, body_sha256_hex, now}));
    if (db_->Changes() > 0) {
      out.generation = 1;  // the column's default
      return absl::OkStatus();
    }
    std::string hash, state;
    int64_t created = 0, generation = 0;
    RETURN_IF_ERROR(db_->Query(
        "SELECT body_sha256, state, status, body, created_at, generation FROM idempotency_claims "
        "WHERE user_id=? AND key=? AND route=?",
        {user_id, key, route}, [&](const SqlRow& r) {
          hash = r.Text(0);
          state = r.Text(1);
          out.response = StoredResponse{static_cast<int>(r.Int(2)), r.Text(3)};
          created = r.Int(4);
          generation = r.Int(5);
        }));
    if (hash != body_sha256_hex) {
      out.outcome = IdempotencyClaim::Outcome::kDifferentBody;
    } else if (state == "done") {
      out.outcome = IdempotencyClaim::Outcome::kReplay;
    } else if (now - created > stale_after_s) {
      // Taken over: the old holder's refreshes and answer no longer count.
      RETURN_IF_ERROR(db_->Exec(
          "UPDATE idempotency_claims SET created_at=?, generation=? WHERE user_id=? AND key=? "
          "AND route=?",
          {now, generation + 1, user_id, key, route}));
      out.outcome = IdempotencyClaim::Outcome::kClaimed;
      out.generation = generation + 1;
    } else {
      out.outcome = IdempotencyClaim::Outcome::kRunning;
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteMetadataStore::FinishIdempotent(const std::string& user_id,
                                                   const std::string& key, const std::string& route,
                                                   int64_t generation,
                                                   const StoredResponse& response) {
  RETURN_IF_ERROR(
      db_->Exec("UPDATE idempotency_claims SET state='done', status=?, body=? WHERE user_id=? AND "
                "key=? AND route=? AND generation=? AND state='running'",
                {int64_t{response.status}, response.body, user_id, key, route, generation}));
  if (db_->Changes() == 0) return ClaimLost(key, route, generation);
  return absl::OkStatus();
}

absl::Status SqliteMetadataStore::RefreshIdempotent(const std::string& user_id,
                                                    const std::string& key,
                                                    const std::string& route, int64_t generation,
                                                    int64_t now) {
  RETURN_IF_ERROR(
      db_->Exec("UPDATE idempotency_claims SET created_at=? WHERE user_id=? AND key=? AND route=? "
                "AND generation=? AND state='running'",
                {now, user_id, key, route, generation}));
  if (db_->Changes() == 0) return ClaimLost(key, route, generation);
  return absl::OkStatus();
}

absl::Status SqliteMetadataStore::ReleaseIdempotent(const std::string& user_id,
                                                    const std::string& key,
                                                    const std::string& route, int64_t generation) {
  return db_->Exec(
      "DELETE FROM idempotency_claims WHERE user_id=? AND key=? AND route=? AND generation=? AND "
      "state='running'",
      {user_id, key, route, generation});
}

}  // namespace keyward::metadata_internal
