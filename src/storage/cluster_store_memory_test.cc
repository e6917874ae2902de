// After a ClusterStore is destroyed, none of its plaintext values and none of its keys remain
// readable anywhere in this process's memory. Scans /proc/self/mem; the test keeps its own copies
// of the secrets only XOR-masked, so they cannot match.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "crypto/random.h"
#include "crypto/secret_arena.h"
#include "crypto/secret_bytes.h"
#include "crypto/wipe_on_free.h"
#include "storage/cluster_store.h"
#include "storage/test_providers.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

struct Masked {
  std::string label;
  std::string masked;  // secret XOR mask
  std::string mask;
};

Masked Mask(std::string label, std::string_view secret) {
  Masked m{std::move(label), std::string(secret.size(), '\0'), *RandomString(secret.size())};
  for (size_t i = 0; i < secret.size(); ++i) m.masked[i] = secret[i] ^ m.mask[i];
  return m;
}

bool EqualsUnmasked(std::string_view candidate, const Masked& m) {
  if (candidate.size() != m.masked.size()) return false;
  for (size_t i = 0; i < candidate.size(); ++i) {
    if ((candidate[i] ^ m.mask[i]) != m.masked[i]) return false;
  }
  return true;
}

// Occurrences of each secret in every readable mapping of this process; `where` collects the
// mapping of each hit for the failure message.
std::vector<int> ScanOwnMemory(const std::vector<Masked>& secrets, std::string* where) {
  std::vector<int> hits(secrets.size(), 0);
  // smaps, not maps: mappings marked do-not-dump (a sanitizer's terabytes of shadow memory) are
  // skipped, as a core dump skips them; they hold no program data.
  std::ifstream smaps("/proc/self/smaps");
  std::vector<std::string> lines;
  for (std::string line; std::getline(smaps, line);) {
    if (line.rfind("VmFlags:", 0) == 0) {
      if (!lines.empty() && (line + " ").find(" dd ") != std::string::npos) lines.pop_back();
    } else if (!line.empty() && line.find(':') > line.find(' ')) {  // a mapping's first line
      lines.push_back(line);
    }
  }
  int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  if (mem < 0) return hits;
  constexpr size_t kChunk = 1 << 20;
  std::vector<char> buf(kChunk + 64);
  for (const std::string& line : lines) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in, path);
    if (perms.empty() || perms[0] != 'r') continue;
    if (path.find("[vvar") != std::string::npos || path.find("[vsyscall]") != std::string::npos) {
      continue;
    }
    uint64_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    uint64_t end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    for (uint64_t at = start; at < end; at += kChunk) {
      size_t overlap = 63;  // secrets are at most 64 bytes; catch ones across chunk edges
      size_t len = static_cast<size_t>(std::min<uint64_t>(kChunk + overlap, end - at));
      ssize_t n = pread(mem, buf.data(), len, static_cast<off_t>(at));
      if (n <= 0) break;
      for (size_t s = 0; s < secrets.size(); ++s) {
        const Masked& m = secrets[s];
        char first = static_cast<char>(m.masked[0] ^ m.mask[0]);
        size_t limit = std::min<size_t>(static_cast<size_t>(n), kChunk + m.masked.size() - 1);
        const char* p = buf.data();
        while (limit >= m.masked.size()) {
          const char* q = static_cast<const char*>(memchr(p, first, limit - m.masked.size() + 1));
          if (q == nullptr) break;
          if (EqualsUnmasked(std::string_view(q, m.masked.size()), m)) {
            ++hits[s];
            *where += m.label + " in " + line + "\n";
          }
          limit -= static_cast<size_t>(q - p) + 1;
          p = q + 1;
        }
      }
    }
  }
  close(mem);
  std::fill(buf.begin(), buf.end(), 0);
  return hits;
}

TEST(ClusterStoreMemory, NothingOfAClosedClusterStaysInMemory) {
  EnableWipeOnFree();
  if (!WipeOnFreeEnabled()) GTEST_SKIP() << "wipe-on-free is unavailable in sanitizer builds";
  // Key buffers are kept out of dumps (crypto/secret_arena.h), which this search skips like a
  // dump would: searched as --allow-core-dumps leaves them, so the control finds the keys and
  // the check after closing proves they were wiped, not merely hidden.
  SetSecretMemoryDontDump(false);
  absl::Cleanup restore = [] { SetSecretMemoryDontDump(true); };
  fs::path root = fs::temp_directory_path() / ("kw-mem-" + *RandomHex(6));
  auto shared = SharedStorageResources::New(8 << 20, 16 << 20);
  TestProvider provider("key-a");
  ClusterStoreOptions opts;
  opts.dir = (root / "c-1").string();
  opts.cluster_id = "c-1";

  Masked canary;
  std::vector<Masked> secrets;
  {
    auto store = ClusterStore::Create(opts, provider, shared);
    ASSERT_TRUE(store.ok()) << store.status();
    {
      SecretBytes value = *RandomSecret(48);
      canary = Mask("canary", value.view());
      StoredValue v;
      v.data.assign(value.view());
      ASSERT_TRUE((*store)->Put("canary", v).ok());
      WipeString(v.data);
    }
    for (int i = 0; i < 2000; ++i) {  // more than one block, so the canary's block is not alone
      ASSERT_TRUE((*store)->Put("filler" + std::to_string(i), {std::string(100, 'f'), 0}).ok());
    }
    ASSERT_TRUE((*store)->Flush().ok());
    {
      auto v = (*store)->Get("canary");  // from the SST: the block cache now holds it
      ASSERT_TRUE(v.ok() && v->has_value());
      EXPECT_TRUE(EqualsUnmasked((*v)->data, canary));
      WipeString((*v)->data);
    }
    const KeyDictionary& dict = (*store)->dictionary();
    {
      SecretBytes k = dict.DictionaryKeyForTest();
      secrets.push_back(Mask("dictionary key", k.view()));
    }
    for (uint32_t id : dict.DataKeyIds()) {
      secrets.push_back(Mask("data key " + std::to_string(id), dict.Find(id)->key.view()));
    }
    std::string where;
    std::vector<int> open_hits = ScanOwnMemory({canary}, &where);
    EXPECT_GE(open_hits[0], 1) << "control: the open store must hold the canary somewhere";
    open_hits = ScanOwnMemory(secrets, &where);
    for (size_t i = 0; i < secrets.size(); ++i) {
      EXPECT_GE(open_hits[i], 1) << "control: the open store must hold " << secrets[i].label;
    }
  }
  secrets.push_back(canary);
  std::string where;
  std::vector<int> hits = ScanOwnMemory(secrets, &where);
  for (size_t i = 0; i < secrets.size(); ++i) {
    EXPECT_EQ(hits[i], 0) << secrets[i].label << " still in memory after close:\n" << where;
  }
  fs::remove_all(root);
}

// Cost of the wipe: run with --gtest_also_run_disabled_tests. Puts then gets of 100-byte values
// through ClusterStore, wipe off and on interleaved.
TEST(ClusterStoreMemory, DISABLED_WipeOnFreeCost) {
  constexpr int kOps = 200000;
  auto run = [](bool wipe) {
    SetWipeOnFreeForTest(wipe);
    fs::path root = fs::temp_directory_path() / ("kw-mem-bench-" + *RandomHex(6));
    TestProvider provider("key-a");
    ClusterStoreOptions opts;
    opts.dir = root.string();
    opts.cluster_id = "bench";
    auto store =
        ClusterStore::Create(opts, provider, SharedStorageResources::New(32 << 20, 64 << 20));
    std::string value(100, 'v');
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kOps; ++i) {
      EXPECT_TRUE((*store)->Put("key" + std::to_string(i * 7919 % kOps), {value, 0}).ok());
    }
    auto t1 = std::chrono::steady_clock::now();
    EXPECT_TRUE((*store)->Flush().ok());
    auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < kOps; ++i) {
      EXPECT_TRUE((*store)->Get("key" + std::to_string(i * 104729 % kOps)).ok());
    }
    auto t3 = std::chrono::steady_clock::now();
    store->reset();
    fs::remove_all(root);
    auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
    return std::make_pair(kOps / secs(t1 - t0), kOps / secs(t3 - t2));
  };
  for (int round = 0; round < 3; ++round) {
    for (bool wipe : {false, true}) {
      auto [puts, gets] = run(wipe);
      printf("wipe=%d puts/s=%.0f gets/s=%.0f\n", wipe, puts, gets);
    }
  }
  SetWipeOnFreeForTest(true);
}

}  // namespace
}  // namespace keyward
