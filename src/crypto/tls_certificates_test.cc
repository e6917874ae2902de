#include "crypto/tls_certificates.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "util/file_util.h"

namespace keyward {
namespace {

std::string TempDir() {
  std::string t = (std::filesystem::temp_directory_path() / "kw-tls-XXXXXX").string();
  return mkdtemp(t.data());
}

int Mode(const std::string& path) {
  struct stat st {};
  stat(path.c_str(), &st);
  return st.st_mode & 0777;
}

// What a TLS client does with the files: `openssl verify` of the chain and the host names.
int OpensslVerify(const TlsFiles& f, const std::string& host_flag) {
  std::string cmd =
      "openssl verify -CAfile " + f.ca_cert + " " + host_flag + " " + f.cert + " >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

TEST(SelfSignedTls, IssuesAChainClientsVerifyForEveryHost) {
  std::string dir = TempDir() + "/tls";
  auto files = EnsureSelfSignedTls(dir, {"127.0.0.1", "localhost", "db.example.com"});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(Mode(files->key), 0600);
  EXPECT_EQ(Mode(dir + "/ca.key"), 0600);
  EXPECT_TRUE(CheckServerTlsFiles(files->cert, files->key).ok());
  EXPECT_EQ(OpensslVerify(*files, "-verify_ip 127.0.0.1"), 0);
  EXPECT_EQ(OpensslVerify(*files, "-verify_hostname db.example.com"), 0);
  EXPECT_NE(OpensslVerify(*files, "-verify_hostname other.example.com"), 0);
}

TEST(SelfSignedTls, ReusedUntilTheHostsChangeAndTheCaStaysTheSame) {
  std::string dir = TempDir() + "/tls";
  auto first = EnsureSelfSignedTls(dir, {"127.0.0.1"});
  ASSERT_TRUE(first.ok());
  std::string ca = *ReadFileToString(first->ca_cert, 1 << 20);
  std::string cert = *ReadFileToString(first->cert, 1 << 20);
  auto again = EnsureSelfSignedTls(dir, {"127.0.0.1"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*ReadFileToString(again->cert, 1 << 20), cert);
  auto wider = EnsureSelfSignedTls(dir, {"127.0.0.1", "db.internal"});
  ASSERT_TRUE(wider.ok());
  EXPECT_NE(*ReadFileToString(wider->cert, 1 << 20), cert);
  EXPECT_EQ(*ReadFileToString(wider->ca_cert, 1 << 20), ca);  // clients keep trusting it
  EXPECT_EQ(OpensslVerify(*wider, "-verify_hostname db.internal"), 0);
}

// Galera nodes connect to each other with one certificate: it must pass as a TLS client's too
// (OpenSSL refuses "unsuitable certificate purpose" otherwise), and a server-only one is reissued.
TEST(SelfSignedTls, PeerCertificatesAlsoServeAsClientCertificates) {
  std::string dir = TempDir() + "/tls";
  auto server_only = EnsureSelfSignedTls(dir, {"127.0.0.1"});
  ASSERT_TRUE(server_only.ok());
  EXPECT_NE(OpensslVerify(*server_only, "-purpose sslclient"), 0);
  auto peer = EnsureSelfSignedTls(dir, {"127.0.0.1"}, /*peer_auth=*/true);
  ASSERT_TRUE(peer.ok());
  EXPECT_EQ(OpensslVerify(*peer, "-purpose sslclient"), 0);
  EXPECT_EQ(OpensslVerify(*peer, "-purpose sslserver -verify_ip 127.0.0.1"), 0);
}

TEST(CheckServerTlsFiles, SaysWhatIsWrong) {
  std::string dir = TempDir();
  auto a = EnsureSelfSignedTls(dir + "/a", {"127.0.0.1"});
  auto b = EnsureSelfSignedTls(dir + "/b", {"127.0.0.1"});
  ASSERT_TRUE(a.ok() && b.ok());
  absl::Status mismatch = CheckServerTlsFiles(a->cert, b->key);
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.message().find("is not the private key"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomically(dir + "/junk.pem", "not a certificate", 0600).ok());
  absl::Status junk = CheckServerTlsFiles(dir + "/junk.pem", a->key);
  EXPECT_NE(junk.message().find("is not a PEM certificate"), std::string::npos);
  EXPECT_FALSE(CheckServerTlsFiles(dir + "/missing.pem", a->key).ok());
  ASSERT_EQ(chmod(a->key.c_str(), 0644), 0);
  absl::Status open_key = CheckServerTlsFiles(a->cert, a->key);
  EXPECT_EQ(open_key.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(open_key.message().find("readable by every user"), std::string::npos);
  ASSERT_EQ(chmod(a->key.c_str(), 0640), 0);
  EXPECT_TRUE(CheckServerTlsFiles(a->cert, a->key).ok());
}

}  // namespace
}  // namespace keyward
