#pragma once
// MariadbKeyService: serves one cluster's KeyDictionary to the keyward_key_management plugin
// inside that cluster's mariadbd, over a private SOCK_STREAM Unix socket (wire format in
// mariadb/key_protocol_wire.h: fixed 16-byte request, 16-byte header + key answer, one request
// per connection).
//
// MariaDB key version V = 2 x keyward data-key id (why: key_protocol_wire.h); the latest is
// 2 x KeyDictionary::Current()->id. The bytes handed to MariaDB for (key id K, version V) are
// HKDF-SHA256(data key V/2, info "keyward-mariadb-key-id:K"), for every K: different MariaDB key
// ids never share bytes, and none equals a data key keyward uses for anything else.
//
// Who may ask: each connection's peer (SO_PEERCRED) must run as the peer account's uid (by
// default keyward's own; SetPeerAccount: the unprivileged account mariadbd runs as) AND be allowed
// by `allow_peer(pid)` or be the bootstrap pid set with SetBootstrapPid (InitializeDataDir's
// mariadbd --bootstrap). Anyone else is closed without an answer and logged (event
// mariadb.key_peer_refused; pid and uid, never key bytes). The socket's directory and file let
// only that account in: 0700/0600 when it is keyward's own uid; otherwise directory 0710 and
// socket 0660, both keyward's with the account's group (search and connect, nothing else).
//
// One thread accepts and answers connections one at a time (each with a 2 s I/O timeout; the
// plugin caches keys, so requests are rare). Thread-safe: Start/Stop from one owner thread;
// SetBootstrapPid from any thread. The dictionary must outlive Stop().

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"
#include "storage/key_dictionary.h"

namespace keyward {

// A parsed request (see key_protocol_wire.h).
struct MariadbKeyRequest {
  uint32_t op = 0;
  uint32_t key_id = 0;
  uint32_t key_version = 0;
};

// Parses exactly one request; InvalidArgument for anything else (wrong size, magic, op, or a
// LATEST request carrying a version). Pure: for fuzzing and unit tests.
absl::StatusOr<MariadbKeyRequest> ParseMariadbKeyRequest(std::string_view bytes);
// Encodes a request (the plugin's side, in C++ for tests and tools).
std::string EncodeMariadbKeyRequest(const MariadbKeyRequest& request);
// The answer to `request` from `dictionary`: header + key, in wiped memory.
SecretBytes AnswerMariadbKeyRequest(const MariadbKeyRequest& request,
                                    const KeyDictionary& dictionary);
// A malformed-request answer.
SecretBytes MariadbKeyErrorResponse(uint32_t status);

// The MariaDB key version of data key `data_key_id`, and back (0 for a version that names no
// data key). For reading information_schema.INNODB_TABLESPACES_ENCRYPTION's key versions.
uint32_t MariadbKeyVersionOfDataKey(uint32_t data_key_id);
uint32_t DataKeyIdOfMariadbKeyVersion(uint32_t key_version);

// HKDF-SHA256 of `data_key` for MariaDB key id `key_id` (KW_MK_KEY_SIZE bytes).
absl::StatusOr<SecretBytes> DeriveMariadbKey(const SecretBytes& data_key, uint32_t key_id);

class MariadbKeyService {
 public:
  using PeerCheck = std::function<bool(pid_t)>;

  MariadbKeyService(const KeyDictionary& dictionary, PeerCheck allow_peer);
  ~MariadbKeyService();  // Stops.
  MariadbKeyService(const MariadbKeyService&) = delete;
  MariadbKeyService& operator=(const MariadbKeyService&) = delete;

  // Creates the socket at `socket_path` (parent directory created 0700, or tightened to 0700;
  // a stale socket file replaced; anything else at the path refused) and starts answering.
  absl::Status Start(const std::string& socket_path);
  // Stops answering, joins the thread, removes the socket file. Idempotent.
  void Stop();

  // The account allowed to connect (before Start; default keyward's own uid and gid). With
  // another uid, the socket is made reachable through `gid` only.
  void SetPeerAccount(uid_t uid, gid_t gid) {
    peer_uid_ = uid;
    peer_gid_ = gid;
  }

  // Also allow this pid (0: none) — the mariadbd --bootstrap child, whose pid the caller's
  // PeerCheck does not know.
  void SetBootstrapPid(pid_t pid) { bootstrap_pid_.store(pid); }

  const std::string& socket_path() const { return socket_path_; }
  // Requests answered and peers refused since Start (tests, metrics).
  uint64_t answered() const { return answered_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  void Run();
  void HandleConnection(int fd);

  const KeyDictionary& dictionary_;
  const PeerCheck allow_peer_;
  std::string socket_path_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  std::thread thread_;
  uid_t peer_uid_;
  gid_t peer_gid_;
  std::atomic<pid_t> bootstrap_pid_{0};
  std::atomic<uint64_t> answered_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace keyward
