// Feeds arbitrary bytes to the RESP parser the way the server does (a buffer that grows as bytes
// arrive, parsed until it needs more), once whole and once split in two at a point the input
// chooses, and checks that both give the same commands and the same protocol error: a command
// must not change with how the network cut it. Also never reads out of bounds, and a parsed
// command always consumes bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "server/glob.h"
#include "server/resp_parser.h"

namespace {

struct Parsed {
  std::vector<std::vector<std::string>> commands;
  std::string error;  // empty: no protocol error
  bool operator==(const Parsed& o) const { return commands == o.commands && error == o.error; }
};

// Parses what `buffer` holds from `*pos` on; false once a protocol error ends the connection.
bool Drain(const keyward::RespParser& parser, const std::string& buffer, size_t* pos, Parsed* out) {
  std::vector<std::string> args;
  std::string error;
  while (*pos < buffer.size()) {
    size_t consumed = 0;
    auto r = parser.Parse(std::string_view(buffer).substr(*pos), &consumed, &args, &error);
    if (r == keyward::ParseOutcome::kNeedMore) return true;
    if (r == keyward::ParseOutcome::kProtocolError) {
      out->error = error.empty() ? "(empty message)" : error;
      return false;
    }
    if (consumed == 0) __builtin_trap();  // a command must consume bytes or the server spins
    *pos += consumed;
    out->commands.push_back(args);
  }
  return true;
}

Parsed Feed(const keyward::RespParser& parser, std::string_view input, size_t split) {
  Parsed out;
  std::string buffer(input.substr(0, split));
  size_t pos = 0;
  if (!Drain(parser, buffer, &pos, &out)) return out;
  buffer.append(input.substr(split));
  Drain(parser, buffer, &pos, &out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  keyward::RespLimits limits;
  limits.max_bulk_bytes = 4096;
  limits.max_array_elements = 1024;
  limits.max_inline_bytes = 4096;
  keyward::RespParser parser(limits);
  // The first two bytes choose the split point; the rest is what the client sent.
  size_t split_seed = static_cast<size_t>(data[0]) << 8 | data[1];
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  Parsed whole = Feed(parser, input, input.size());
  Parsed split = Feed(parser, input, input.empty() ? 0 : split_seed % (input.size() + 1));
  if (!(whole == split)) __builtin_trap();
  for (const auto& args : whole.commands) {
    if (args.size() >= 2) (void)keyward::GlobMatch(args[0], args[1]);
  }
  return 0;
}
