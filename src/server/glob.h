#pragma once
// Redis-style glob matching for KEYS and SCAN MATCH: * ? [abc] [^a-z] and backslash escapes,
// with Redis 7's reading of the odd cases (an unterminated class runs to the end of the pattern,
// a reversed range [z-a] is a range, comparisons are of signed chars).
//
// Worst-case linear in the text: the pattern is split at its '*'s into segments of single-character
// atoms; the first and last segment are anchored at the ends of the text, the others are found
// left to right, each at its earliest position (which is always the right choice for a glob), with
// a bit-parallel scan (shift-and) that reads each byte once per 64 atoms. There is no
// backtracking, so `*aaaa...ab` against a long run of 'a's costs one pass, not length².
// A GlobPattern is immutable after Compile and may be used from several threads.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace keyward {

// Longer patterns are refused (KEYS, SCAN MATCH): the compiled pattern holds 32 bytes per pattern
// byte, and the scan costs one word operation per 64 pattern bytes per text byte.
inline constexpr size_t kMaxGlobPatternBytes = 4096;

class GlobPattern {
 public:
  // Any byte string is a pattern (as in Redis); the caller enforces kMaxGlobPatternBytes.
  static GlobPattern Compile(std::string_view pattern);
  bool Matches(std::string_view text) const;

 private:
  // A run of atoms between '*'s. masks[c * words + w] bit b: atom 64*w+b matches byte c.
  struct Segment {
    size_t length = 0;
    size_t words = 0;
    std::vector<uint64_t> masks;
    bool AtomMatches(size_t i, unsigned char c) const {
      return (masks[c * words + i / 64] >> (i % 64)) & 1;
    }
    bool MatchesAt(std::string_view text, size_t pos) const;
    // Earliest position >= from where the segment matches inside text[from, end); npos if none.
    size_t Find(std::string_view text, size_t from, size_t end) const;
  };
  bool has_star_ = false;
  std::vector<Segment> segments_;  // without a star: exactly one
};

// Compiles and matches once: for a single key. Loops over many keys compile once.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace keyward
