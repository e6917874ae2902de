// The server's command dispatch after AUTH: arbitrary bytes, parsed as a client's RESP or inline
// commands, each run through ExecuteCommand against a real ClusterStore (RocksDB, encrypted, in a
// temp dir, escrow key) on an authenticated session. Every reply must be well-formed RESP and
// nothing may crash, leak or read out of bounds. The store persists across inputs (as a server's
// does), so sequences like SET then SCAN/KEYS/INCR reach state that earlier inputs left.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kms/escrow/escrow_provider.h"
#include "server/commands.h"
#include "server/resp_parser.h"

namespace {

struct Fixture {
  std::string root;
  std::unique_ptr<keyward::EscrowProvider> escrow;
  keyward::ClusterEndpoint endpoint;
};

Fixture* Setup() {
  auto* f = new Fixture;
  std::string tmpl = (std::filesystem::temp_directory_path() / "kw-command-fuzz-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  f->root = tmpl;
  auto escrow = keyward::EscrowProvider::LoadOrCreate(f->root + "/escrow.key");
  if (!escrow.ok()) abort();
  f->escrow = *std::move(escrow);
  keyward::ClusterStoreOptions o;
  o.dir = f->root + "/clusters/c-fuzz";
  o.cluster_id = "c-fuzz";
  auto store = keyward::ClusterStore::Create(
      o, *f->escrow, keyward::SharedStorageResources::New(8 << 20, 8 << 20));
  if (!store.ok()) abort();
  f->endpoint.cluster_id = "c-fuzz";
  f->endpoint.store = std::shared_ptr<keyward::ClusterStore>(*std::move(store));
  f->endpoint.durability = keyward::Durability::kNone;  // fsyncs would only slow the fuzzer
  return f;
}

Fixture& TheFixture() {
  static Fixture* f = [] {
    Fixture* made = Setup();
    static std::string dir = made->root;
    atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return made;
  }();
  return *f;
}

// One RESP2 reply from the front of `s`: its length, or 0 if malformed.
size_t ReplyLength(std::string_view s, int depth = 0) {
  if (s.empty() || depth > 8) return 0;
  size_t eol = s.find("\r\n");
  if (eol == std::string_view::npos) return 0;
  std::string_view head = s.substr(1, eol - 1);
  switch (s[0]) {
    case '+':
    case '-':
    case ':':
      return eol + 2;
    case '$': {
      long long n = std::atoll(std::string(head).c_str());
      if (n == -1) return eol + 2;
      if (n < 0 || s.size() < eol + 2 + static_cast<size_t>(n) + 2) return 0;
      if (s.substr(eol + 2 + static_cast<size_t>(n), 2) != "\r\n") return 0;
      return eol + 2 + static_cast<size_t>(n) + 2;
    }
    case '*': {
      long long n = std::atoll(std::string(head).c_str());
      size_t pos = eol + 2;
      for (long long i = 0; i < n; ++i) {
        size_t len = ReplyLength(s.substr(pos), depth + 1);
        if (len == 0) return 0;
        pos += len;
      }
      return pos;
    }
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = TheFixture();
  keyward::RespLimits limits;
  limits.max_bulk_bytes = 4096;
  limits.max_array_elements = 64;
  limits.max_inline_bytes = 4096;
  keyward::RespParser parser(limits);
  keyward::Session session;
  session.id = 1;
  session.authenticated = true;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::string error;
  size_t pos = 0;
  for (int n = 0; n < 64 && pos < in.size() && !session.close_after_reply; ++n) {
    size_t consumed = 0;
    if (parser.Parse(in.substr(pos), &consumed, &args, &error) != keyward::ParseOutcome::kCommand) {
      break;
    }
    pos += consumed;
    if (args.empty()) continue;
    std::string out;
    keyward::ExecuteCommand(f.endpoint, session, args, &out);
    if (ReplyLength(out) != out.size()) __builtin_trap();  // exactly one well-formed reply
  }
  return 0;
}
