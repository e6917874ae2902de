#include "mariadb/key_service.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "mariadb/key_protocol_wire.h"
#include "mariadb/os_account.h"
#include "storage/test_providers.h"
#include "util/log.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

std::string Req(uint32_t op, uint32_t key_id, uint32_t version) {
  return EncodeMariadbKeyRequest({op, key_id, version});
}

uint32_t U32At(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(s[at + i]);
  return v;
}

// Sends raw bytes to the socket and returns everything the server answered before closing.
std::string Ask(const std::string& path, const std::string& bytes) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // A refused peer may find the connection closed before it writes (EPIPE): no answer either.
  if (send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    close(fd);
    return "";
  }
  shutdown(fd, SHUT_WR);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(MariadbKeyProtocol, ParsesWellFormedRequests) {
  auto r = ParseMariadbKeyRequest(Req(KW_MK_OP_GET_KEY, 7, 3));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->op, KW_MK_OP_GET_KEY);
  EXPECT_EQ(r->key_id, 7u);
  EXPECT_EQ(r->key_version, 3u);
  EXPECT_TRUE(ParseMariadbKeyRequest(Req(KW_MK_OP_LATEST, 1, 0)).ok());
}

TEST(MariadbKeyProtocol, RejectsEveryMalformedRequest) {
  std::string good = Req(KW_MK_OP_GET_KEY, 1, 1);
  EXPECT_FALSE(ParseMariadbKeyRequest("").ok());
  EXPECT_FALSE(ParseMariadbKeyRequest(good.substr(0, 15)).ok());
  EXPECT_FALSE(ParseMariadbKeyRequest(good + "x").ok());
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  EXPECT_FALSE(ParseMariadbKeyRequest(bad_magic).ok());
  EXPECT_FALSE(ParseMariadbKeyRequest(Req(9, 1, 1)).ok());
  EXPECT_FALSE(ParseMariadbKeyRequest(Req(0, 1, 1)).ok());
  EXPECT_FALSE(ParseMariadbKeyRequest(Req(KW_MK_OP_LATEST, 1, 5)).ok());
  // Every truncation and every single-byte change of the header either parses to the same
  // fields' shape or fails; none crashes (a tiny in-test fuzz).
  for (size_t i = 0; i < good.size(); i++) {
    for (int b = 0; b < 256; b++) {
      std::string m = good;
      m[i] = static_cast<char>(b);
      (void)ParseMariadbKeyRequest(m);
    }
    (void)ParseMariadbKeyRequest(good.substr(0, i));
  }
}

TEST(MariadbKeyDerivation, KeyIdsNeverShareBytesAndNoneIsTheDataKey) {
  SecretBytes data_key = *RandomSecret(32);
  auto k1 = DeriveMariadbKey(data_key, 1);
  auto k1_again = DeriveMariadbKey(data_key, 1);
  auto k2 = DeriveMariadbKey(data_key, 2);
  ASSERT_TRUE(k1.ok() && k1_again.ok() && k2.ok());
  EXPECT_EQ(k1->size(), static_cast<size_t>(KW_MK_KEY_SIZE));
  EXPECT_TRUE(k1->Equals(*k1_again));
  EXPECT_FALSE(k1->Equals(*k2));
  EXPECT_FALSE(k1->Equals(data_key));
  SecretBytes other_key = *RandomSecret(32);
  EXPECT_FALSE(DeriveMariadbKey(other_key, 1)->Equals(*k1));
}

class MariadbKeyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-mks-" + *RandomHex(6));
    fs::create_directories(root_);
    auto d =
        KeyDictionary::Create((root_ / KeyDictionary::kFileName).string(), "c-1", provider_, 1000);
    ASSERT_TRUE(d.ok()) << d.status();
    dict_ = *std::move(d);
    socket_ = (root_ / "keys" / "mariadb-keys.sock").string();
    // The service logs from its own thread: the captured text is read under the same mutex.
    SetLogSinkForTest([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_ += line + "\n";
    });
  }
  void TearDown() override {
    SetLogSinkForTest(nullptr);
    fs::remove_all(root_);
  }

  TestProvider provider_{"k"};
  fs::path root_;
  std::unique_ptr<KeyDictionary> dict_;
  std::string socket_;
  std::string Logged() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }
  std::mutex log_mu_;
  std::string log_ ABSL_GUARDED_BY(log_mu_);
};

TEST_F(MariadbKeyServiceTest, AnswersTheAllowedPeerWithDerivedKeysAndFollowsRotation) {
  MariadbKeyService service(*dict_, [](pid_t pid) { return pid == getpid(); });
  ASSERT_TRUE(service.Start(socket_).ok());
  struct stat st {};
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((root_ / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  uint32_t first_id = dict_->Current()->id;
  uint32_t first = MariadbKeyVersionOfDataKey(first_id);
  EXPECT_EQ(first, 2 * first_id);
  EXPECT_EQ(DataKeyIdOfMariadbKeyVersion(first), first_id);
  std::string latest = Ask(socket_, Req(KW_MK_OP_LATEST, 1, 0));
  ASSERT_EQ(latest.size(), static_cast<size_t>(KW_MK_RESPONSE_HEADER_SIZE));
  EXPECT_EQ(latest.substr(0, 4), KW_MK_RESPONSE_MAGIC);
  EXPECT_EQ(U32At(latest, 4), KW_MK_STATUS_OK);
  EXPECT_EQ(U32At(latest, 8), first);

  std::string key = Ask(socket_, Req(KW_MK_OP_GET_KEY, 1, first));
  ASSERT_EQ(key.size(), static_cast<size_t>(KW_MK_RESPONSE_HEADER_SIZE + KW_MK_KEY_SIZE));
  EXPECT_EQ(U32At(key, 12), static_cast<uint32_t>(KW_MK_KEY_SIZE));
  auto expected = DeriveMariadbKey(dict_->Find(first_id)->key, 1);
  EXPECT_TRUE(SecretBytes::FromView(std::string_view(key).substr(16)).Equals(*expected));

  auto added = dict_->AddDataKey(2000);
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(U32At(Ask(socket_, Req(KW_MK_OP_LATEST, 1, 0)), 8), 2 * *added);
  // The old version stays readable: pages not yet re-encrypted still need it.
  EXPECT_EQ(U32At(Ask(socket_, Req(KW_MK_OP_GET_KEY, 1, first)), 4), KW_MK_STATUS_OK);

  // No data key 500; odd versions name no data key at all.
  for (uint32_t v : {1000u, first + 1, 0u}) {
    std::string unknown = Ask(socket_, Req(KW_MK_OP_GET_KEY, 1, v));
    ASSERT_EQ(unknown.size(), static_cast<size_t>(KW_MK_RESPONSE_HEADER_SIZE)) << v;
    EXPECT_EQ(U32At(unknown, 4), KW_MK_STATUS_UNKNOWN_VERSION) << v;
  }

  std::string bad = Ask(socket_, Req(KW_MK_OP_GET_KEY, 1, first) + "extra");
  ASSERT_EQ(bad.size(), static_cast<size_t>(KW_MK_RESPONSE_HEADER_SIZE));
  EXPECT_EQ(U32At(bad, 4), KW_MK_STATUS_BAD_REQUEST);
  EXPECT_EQ(service.refused(), 0u);
  service.Stop();
  EXPECT_FALSE(fs::exists(socket_));
}

TEST_F(MariadbKeyServiceTest, OtherPeersAreClosedWithoutAnAnswerAndLogged) {
  std::atomic<pid_t> allowed{1};  // init: never this test
  MariadbKeyService service(*dict_, [&](pid_t pid) { return pid == allowed.load(); });
  ASSERT_TRUE(service.Start(socket_).ok());
  EXPECT_EQ(Ask(socket_, Req(KW_MK_OP_GET_KEY, 1, 2 * dict_->Current()->id)), "");
  EXPECT_EQ(service.refused(), 1u);
  EXPECT_NE(Logged().find("mariadb.key_peer_refused"), std::string::npos);
  // The bootstrap pid is allowed while set, and only then.
  service.SetBootstrapPid(getpid());
  EXPECT_EQ(Ask(socket_, Req(KW_MK_OP_LATEST, 1, 0)).size(),
            static_cast<size_t>(KW_MK_RESPONSE_HEADER_SIZE));
  service.SetBootstrapPid(0);
  EXPECT_EQ(Ask(socket_, Req(KW_MK_OP_LATEST, 1, 0)), "");
}

TEST_F(MariadbKeyServiceTest, APeerOfAnotherUidIsRefusedEvenWithTheAllowedPid) {
  // The account mariadbd runs as is some other uid; this process has the allowed pid (the shape
  // a process of another user racing for the socket would have) but not that uid.
  const uid_t account_uid = geteuid() == 65534 ? 65533 : 65534;
  MariadbKeyService service(*dict_, [](pid_t pid) { return pid == getpid(); });
  service.SetPeerAccount(account_uid, getegid());
  ASSERT_TRUE(service.Start(socket_).ok());
  // Reachable through the account's group only: search on the directory, connect on the socket.
  struct stat st {};
  ASSERT_EQ(stat((root_ / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0710u);
  EXPECT_EQ(st.st_gid, getegid());
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_uid, geteuid());

  EXPECT_EQ(Ask(socket_, Req(KW_MK_OP_GET_KEY, 1, 2 * dict_->Current()->id)), "");
  service.SetBootstrapPid(getpid());  // the bootstrap's pid does not outrank the uid either
  EXPECT_EQ(Ask(socket_, Req(KW_MK_OP_LATEST, 1, 0)), "");
  EXPECT_EQ(service.refused(), 2u);
  EXPECT_EQ(service.answered(), 0u);
  const std::string log = Logged();
  EXPECT_NE(log.find("mariadb.key_peer_refused"), std::string::npos) << log;
  EXPECT_NE(log.find(absl::StrCat("runs as uid ", geteuid(), ", not uid ", account_uid)),
            std::string::npos)
      << log;
}

// Root only: real processes of the account and of another unprivileged uid.
TEST_F(MariadbKeyServiceTest, OnlyTheAccountsProcessGetsAKeyAndOtherUsersCannotConnect) {
  if (geteuid() != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs root to run peers as other uids";
  MariadbOsAccount account{"nobody", 65534, 65534, true};
  MariadbOsAccount stranger{"stranger", 65533, 65533, true};
  fs::permissions(root_, fs::perms::owner_all | fs::perms::others_exec);
  std::atomic<pid_t> allowed{0};
  MariadbKeyService service(*dict_, [&](pid_t pid) { return pid == allowed.load(); });
  service.SetPeerAccount(account.uid, account.gid);
  ASSERT_TRUE(service.Start(socket_).ok());
  // Each child asks for the latest version and exits with 0 (answered), 1 (closed without an
  // answer) or 2 (could not connect: EACCES).
  // Everything the child needs is prepared before fork: it only makes system calls.
  const std::string req = Req(KW_MK_OP_LATEST, 1, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  auto run_as = [&](const MariadbOsAccount& who) {
    int go[2];
    EXPECT_EQ(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
      char b;
      if (read(go[0], &b, 1) != 1) _exit(3);
      if (DropToAccountInChild(who) != 0) _exit(4);
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        _exit(errno == EACCES ? 2 : 5);
      }
      (void)!send(fd, req.data(), req.size(), MSG_NOSIGNAL);
      char buf[64];
      ssize_t n = read(fd, buf, sizeof(buf));
      _exit(n == KW_MK_RESPONSE_HEADER_SIZE ? 0 : 1);
    }
    allowed.store(pid);
    (void)!write(go[1], "x", 1);
    close(go[0]);
    close(go[1]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
  };
  EXPECT_EQ(run_as(account), 0);
  EXPECT_EQ(run_as(stranger), 2);  // the directory is closed to it
  EXPECT_EQ(service.answered(), 1u);
}

TEST_F(MariadbKeyServiceTest, ReplacesAStaleSocketButRefusesAnyOtherFile) {
  {
    MariadbKeyService first(*dict_, nullptr);
    ASSERT_TRUE(first.Start(socket_).ok());
  }
  // A crashed run leaves its socket file behind.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  MariadbKeyService second(*dict_, nullptr);
  EXPECT_TRUE(second.Start(socket_).ok());
  second.Stop();

  std::string file = (root_ / "keys" / "not-a-socket").string();
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  MariadbKeyService third(*dict_, nullptr);
  absl::Status s = third.Start(file);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a socket"), std::string::npos);
}

}  // namespace
}  // namespace keyward
