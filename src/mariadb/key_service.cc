#include "mariadb/key_service.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "mariadb/key_protocol_wire.h"
#include "util/file_util.h"
#include "util/log.h"

namespace keyward {
namespace {

constexpr int kIoTimeoutSeconds = 2;

uint32_t LoadU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

void StoreU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

SecretBytes Response(uint32_t status, uint32_t latest, const SecretBytes* key) {
  const size_t key_size = key != nullptr ? key->size() : 0;
  SecretBytes out(KW_MK_RESPONSE_HEADER_SIZE + key_size);
  std::memcpy(out.data(), KW_MK_RESPONSE_MAGIC, KW_MK_MAGIC_SIZE);
  StoreU32(out.data() + 4, status);
  StoreU32(out.data() + 8, latest);
  StoreU32(out.data() + 12, static_cast<uint32_t>(key_size));
  if (key_size > 0) std::memcpy(out.data() + KW_MK_RESPONSE_HEADER_SIZE, key->data(), key_size);
  return out;
}

// Reads exactly `size` bytes unless the peer closes, errs or times out first.
ssize_t ReadFully(int fd, char* buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

bool WriteFully(int fd, const uint8_t* buf, size_t size) {
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = send(fd, buf + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<MariadbKeyRequest> ParseMariadbKeyRequest(std::string_view bytes) {
  if (bytes.size() != KW_MK_REQUEST_SIZE) {
    return absl::InvalidArgumentError(
        absl::StrCat("key request is ", bytes.size(), " bytes; expected ", KW_MK_REQUEST_SIZE));
  }
  if (bytes.substr(0, KW_MK_MAGIC_SIZE) != KW_MK_REQUEST_MAGIC) {
    return absl::InvalidArgumentError("key request has the wrong magic");
  }
  MariadbKeyRequest request;
  request.op = LoadU32(bytes.data() + 4);
  request.key_id = LoadU32(bytes.data() + 8);
  request.key_version = LoadU32(bytes.data() + 12);
  if (request.op != KW_MK_OP_LATEST && request.op != KW_MK_OP_GET_KEY) {
    return absl::InvalidArgumentError(absl::StrCat("key request has unknown op ", request.op));
  }
  if (request.op == KW_MK_OP_LATEST && request.key_version != 0) {
    return absl::InvalidArgumentError("latest-version request carries a version");
  }
  return request;
}

std::string EncodeMariadbKeyRequest(const MariadbKeyRequest& request) {
  uint8_t buf[KW_MK_REQUEST_SIZE];
  std::memcpy(buf, KW_MK_REQUEST_MAGIC, KW_MK_MAGIC_SIZE);
  StoreU32(buf + 4, request.op);
  StoreU32(buf + 8, request.key_id);
  StoreU32(buf + 12, request.key_version);
  return std::string(reinterpret_cast<const char*>(buf), sizeof(buf));
}

absl::StatusOr<SecretBytes> DeriveMariadbKey(const SecretBytes& data_key, uint32_t key_id) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return absl::InternalError("OpenSSL has no HKDF");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return absl::InternalError("HKDF context allocation failed");
  std::string info = absl::StrCat("keyward-mariadb-key-id:", key_id);
  static constexpr char kSalt[] = "keyward-mariadb-v1";
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(data_key.data()),
                                        data_key.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(kSalt),
                                        sizeof(kSalt) - 1),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes out(KW_MK_KEY_SIZE);
  int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) return absl::InternalError("HKDF derivation failed");
  return out;
}

uint32_t MariadbKeyVersionOfDataKey(uint32_t data_key_id) {
  return KW_MK_VERSION_OF_DATA_KEY(data_key_id);
}

uint32_t DataKeyIdOfMariadbKeyVersion(uint32_t key_version) {
  return key_version % 2 == 0 ? key_version / 2 : 0;
}

SecretBytes MariadbKeyErrorResponse(uint32_t status) { return Response(status, 0, nullptr); }

SecretBytes AnswerMariadbKeyRequest(const MariadbKeyRequest& request,
                                    const KeyDictionary& dictionary) {
  std::shared_ptr<const DataKey> current = dictionary.Current();
  if (current == nullptr) return Response(KW_MK_STATUS_UNAVAILABLE, 0, nullptr);
  const uint32_t latest = MariadbKeyVersionOfDataKey(current->id);
  if (request.op == KW_MK_OP_LATEST) return Response(KW_MK_STATUS_OK, latest, nullptr);
  const uint32_t data_key_id = DataKeyIdOfMariadbKeyVersion(request.key_version);
  std::shared_ptr<const DataKey> key = data_key_id != 0 ? dictionary.Find(data_key_id) : nullptr;
  if (key == nullptr) return Response(KW_MK_STATUS_UNKNOWN_VERSION, latest, nullptr);
  absl::StatusOr<SecretBytes> derived = DeriveMariadbKey(key->key, request.key_id);
  if (!derived.ok()) return Response(KW_MK_STATUS_UNAVAILABLE, latest, nullptr);
  return Response(KW_MK_STATUS_OK, latest, &*derived);
}

MariadbKeyService::MariadbKeyService(const KeyDictionary& dictionary, PeerCheck allow_peer)
    : dictionary_(dictionary),
      allow_peer_(std::move(allow_peer)),
      peer_uid_(geteuid()),
      peer_gid_(getegid()) {}

MariadbKeyService::~MariadbKeyService() { Stop(); }

absl::Status MariadbKeyService::Start(const std::string& socket_path) {
  if (thread_.joinable()) return absl::FailedPreconditionError("key service already started");
  sockaddr_un addr{};
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("key socket path '", socket_path,
                                                   "' must be 1..", sizeof(addr.sun_path) - 1,
                                                   " bytes; use a shorter cluster data directory"));
  }
  const std::string dir = DirName(socket_path);
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return s;
  // A directory others can write would let them race the socket's creation: it is keyward's,
  // and another peer account only gets to search it (g+x through its group).
  const bool shared = peer_uid_ != geteuid();
  if ((shared && chown(dir.c_str(), geteuid(), peer_gid_) != 0) ||
      chmod(dir.c_str(), shared ? 0710 : 0700) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot make '", dir, "' private (", shared ? "0710" : "0700", "): ", ErrnoText(errno)));
  }
  struct stat st {};
  if (lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", socket_path, "' exists and is not a socket; move it away, then start again"));
    }
    unlink(socket_path.c_str());  // Stale socket of a previous run.
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoText(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  // Connecting needs write permission on the socket: its owner only, or its group when the
  // peer is another account (the socket stays keyward's, so that account cannot remove it).
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      (shared && chown(socket_path.c_str(), geteuid(), peer_gid_) != 0) ||
      chmod(socket_path.c_str(), shared ? 0660 : 0600) != 0 || listen(fd, 16) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("cannot listen on key socket '", socket_path, "': ", ErrnoText(err)));
  }
  if (pipe2(wake_fds_, O_CLOEXEC) != 0) {
    int err = errno;
    close(fd);
    unlink(socket_path.c_str());
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(err)));
  }
  listen_fd_ = fd;
  socket_path_ = socket_path;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void MariadbKeyService::Stop() {
  if (!thread_.joinable()) return;
  char b = 1;
  while (write(wake_fds_[1], &b, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(listen_fd_);
  close(wake_fds_[0]);
  close(wake_fds_[1]);
  listen_fd_ = wake_fds_[0] = wake_fds_[1] = -1;
  unlink(socket_path_.c_str());
}

void MariadbKeyService::Run() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LogError("mariadb.key_service_failed", absl::StrCat("key service on '", socket_path_,
                                                          "' stopped: poll: ", ErrnoText(errno)));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      // Out of descriptors: the pending connection stays readable, so back off instead of
      // spinning on poll.
      if (errno == EMFILE || errno == ENFILE) poll(nullptr, 0, 100);
      continue;
    }
    HandleConnection(conn);
    close(conn);
  }
}

void MariadbKeyService::HandleConnection(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) {
    refused_++;
    LogWarn("mariadb.key_peer_refused",
            absl::StrCat("key socket '", socket_path_, "': peer credentials unavailable; closed"));
    return;
  }
  if (cred.uid != peer_uid_) {
    refused_++;
    LogWarn("mariadb.key_peer_refused",
            absl::StrCat("key socket '", socket_path_, "': process ", cred.pid, " runs as uid ",
                         cred.uid, ", not uid ", peer_uid_,
                         " of this cluster's mariadbd; closed without a key"),
            {{"pid", cred.pid}, {"uid", cred.uid}});
    return;
  }
  pid_t bootstrap = bootstrap_pid_.load();
  bool allowed = (bootstrap > 0 && cred.pid == bootstrap) || (allow_peer_ && allow_peer_(cred.pid));
  if (!allowed) {
    refused_++;
    LogWarn("mariadb.key_peer_refused",
            absl::StrCat("key socket '", socket_path_, "': process ", cred.pid,
                         " is not this cluster's mariadbd; closed without a key"),
            {{"pid", cred.pid}, {"uid", cred.uid}});
    return;
  }
  timeval tv{kIoTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  // One byte more than a request: a longer message is malformed, not a request plus garbage.
  char buf[KW_MK_REQUEST_SIZE + 1];
  ssize_t got = ReadFully(fd, buf, KW_MK_REQUEST_SIZE);
  if (got == KW_MK_REQUEST_SIZE) {
    // Anything already queued beyond the 16 bytes makes the request malformed.
    ssize_t extra = recv(fd, buf + KW_MK_REQUEST_SIZE, 1, MSG_DONTWAIT);
    if (extra > 0) got += extra;
  }
  absl::StatusOr<MariadbKeyRequest> request =
      ParseMariadbKeyRequest(std::string_view(buf, static_cast<size_t>(got < 0 ? 0 : got)));
  SecretBytes answer = request.ok() ? AnswerMariadbKeyRequest(*request, dictionary_)
                                    : MariadbKeyErrorResponse(KW_MK_STATUS_BAD_REQUEST);
  if (!request.ok()) {
    LogWarn("mariadb.key_bad_request",
            absl::StrCat("key socket '", socket_path_, "': ", request.status().message()),
            {{"pid", cred.pid}});
  }
  if (WriteFully(fd, answer.data(), answer.size())) answered_++;
}

}  // namespace keyward
