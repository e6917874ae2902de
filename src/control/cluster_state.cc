// ControlPlane's per-cluster claims (one operation on a cluster at a time in this server), the
// compare-and-set state transition, and where a cluster is reached.

#include <mutex>

#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {

ControlPlane::Claim::~Claim() {
  if (!cp_) return;
  std::lock_guard<std::mutex> lock(cp_->claims_mu_);
  cp_->claimed_.erase(id_);
  cp_->claims_cv_.notify_all();
}

absl::StatusOr<ControlPlane::Claimed> ControlPlane::ClaimForChange(const User& actor,
                                                                   const std::string& id, Need need,
                                                                   std::string_view action) {
  // Authorised before waiting, so nobody without the right can hold up a cluster's operations;
  // read again once claimed, so the change starts from the state as of the claim.
  RETURN_IF_ERROR(LoadCluster(actor, id, need, nullptr, action).status());
  ASSIGN_OR_RETURN(Claim claim, ClaimCluster(id));
  ASSIGN_OR_RETURN(Cluster c, LoadCluster(actor, id, need, nullptr, action));
  ASSIGN_OR_RETURN(std::optional<EncryptionKey> key, metadata_.GetKey(c.encryption_key_id));
  return Claimed{std::move(claim), std::move(c), std::move(key)};
}

absl::StatusOr<ControlPlane::Claim> ControlPlane::ClaimCluster(const std::string& id) {
  std::unique_lock<std::mutex> lock(claims_mu_);
  if (!claims_cv_.wait_for(lock, std::chrono::seconds(10),
                           [&] { return claimed_.count(id) == 0; })) {
    return absl::FailedPreconditionError(absl::StrCat("another operation on cluster ", id,
                                                      " is still running; try again in a moment"));
  }
  claimed_.insert(id);
  return Claim(this, id);
}

ControlPlane::Claim ControlPlane::TryClaimCluster(const std::string& id) {
  std::lock_guard<std::mutex> lock(claims_mu_);
  if (claimed_.count(id)) return Claim();
  claimed_.insert(id);
  return Claim(this, id);
}

void ControlPlane::SetBackgroundRunner(std::function<void(std::function<void()>)> run) {
  background_ = std::move(run);
}

ControlPlane::EndpointInfo ControlPlane::Endpoint(const Cluster& c) const {
  EndpointInfo out;
  out.tls = runtime_.tls();
  if (c.engine == "mariadb" && out.tls) out.ca_file = runtime_.MariadbSqlCaFile(c.id);
  if (c.port > 0 && (c.state == "available" || c.state == "degraded")) {
    out.address = absl::StrCat(runtime_.host(), ":", c.port);
    out.addresses.push_back(out.address);
    // A Galera cluster's other nodes (their ports as its supervisor runs them).
    std::vector<int> ports = runtime_.MariadbNodePorts(c.id);
    for (size_t i = 1; i < ports.size(); ++i) {
      out.addresses.push_back(absl::StrCat(runtime_.host(), ":", ports[i]));
    }
  }
  return out;
}

absl::Status ControlPlane::Transition(Cluster& c, const std::string& state,
                                      const std::string& message, const std::string& cause,
                                      std::optional<int> port) {
  ClusterTransition to{state, message, cause, port, Now()};
  ASSIGN_OR_RETURN(bool moved, metadata_.TransitionCluster(c.id, {c.state}, to));
  if (!moved) {
    ASSIGN_OR_RETURN(std::optional<Cluster> now, metadata_.GetCluster(c.id));
    return absl::FailedPreconditionError(
        absl::StrCat("cluster ", c.id, " changed meanwhile: it is ", now ? now->state : "gone",
                     ", not ", c.state, "; reload it and try again"));
  }
  {
    std::lock_guard<std::mutex> lock(unrecorded_mu_);
    unrecorded_.erase(c.id);
  }
  c.state = state;
  c.state_message = message;
  c.state_cause = cause;
  c.updated_at = to.now;
  if (port) c.port = *port;
  return absl::OkStatus();
}

}  // namespace keyward
