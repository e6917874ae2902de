#pragma once
// Point reads answered from memory on the RESP server's I/O thread (see
// ClusterExecutor::RunInline): GET, MGET, EXISTS, STRLEN, TTL, PTTL and PING, when every key they
// name is in a memtable or the block cache. Nothing here reads a file, writes, or takes long, so
// one cluster's reads answered here never delay another cluster's replies; anything else (or a
// key that would need a disk read) goes to the cluster's executor as before.

#include <string>
#include <vector>

#include "server/commands.h"

namespace keyward {

// MGET / EXISTS with more keys than this go to the executor (their cost is bounded per command).
inline constexpr size_t kMaxInlineKeys = 16;

// Appends the reply of `args` to `out` and returns true with `*command` its index in
// CommandNames() when it is one of the reads above, the session is authenticated, the store is
// open and memory holds every key's answer; otherwise appends nothing and returns false.
// On the cluster's executor (or with it claimed, as RunInline does) only.
bool AnswerFromMemory(ClusterEndpoint& endpoint, const Session& session,
                      const std::vector<std::string>& args, std::string* out, size_t* command);

}  // namespace keyward
