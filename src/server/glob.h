#pragma once
// Redis-style glob matching for KEYS and SCAN MATCH: * ? [abc] [^a-z] and backslash escapes.

#include <string_view>

namespace keyward {

bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace keyward
