#include "server/glob.h"

#include <utility>

namespace keyward {
namespace {

// One atom: matches exactly one byte. Redis compares chars as signed, so ranges do too.
struct Atom {
  bool any = false;
  bool negate = false;
  std::vector<std::pair<int, int>> ranges;  // inclusive, signed char values
  bool Matches(unsigned char byte) const {
    if (any) return true;
    int c = static_cast<signed char>(byte);
    bool in = false;
    for (const auto& [lo, hi] : ranges) in |= c >= lo && c <= hi;
    return in != negate;
  }
};

int Signed(char c) { return static_cast<signed char>(c); }

// Parses the class whose '[' is just before pat[*p], the way Redis 7's stringmatchlen reads it.
Atom ParseClass(std::string_view pat, size_t* p) {
  Atom a;
  size_t i = *p;
  if (i < pat.size() && pat[i] == '^') {
    a.negate = true;
    ++i;
  }
  while (i < pat.size()) {
    size_t rem = pat.size() - i;
    if (pat[i] == '\\' && rem >= 2) {
      a.ranges.emplace_back(Signed(pat[i + 1]), Signed(pat[i + 1]));
      i += 2;
    } else if (pat[i] == ']') {
      ++i;
      break;
    } else if (rem >= 3 && pat[i + 1] == '-') {
      int lo = Signed(pat[i]), hi = Signed(pat[i + 2]);
      if (lo > hi) std::swap(lo, hi);
      a.ranges.emplace_back(lo, hi);
      i += 3;
    } else {
      a.ranges.emplace_back(Signed(pat[i]), Signed(pat[i]));
      ++i;
    }
  }
  *p = i;
  return a;
}

}  // namespace

GlobPattern GlobPattern::Compile(std::string_view pat) {
  std::vector<std::vector<Atom>> runs(1);
  GlobPattern g;
  for (size_t p = 0; p < pat.size();) {
    char ch = pat[p];
    if (ch == '*') {
      g.has_star_ = true;
      while (p < pat.size() && pat[p] == '*') ++p;
      runs.emplace_back();
      continue;
    }
    Atom a;
    if (ch == '?') {
      a.any = true;
      ++p;
    } else if (ch == '[') {
      ++p;
      a = ParseClass(pat, &p);
    } else {
      if (ch == '\\' && p + 1 < pat.size()) ++p;
      a.ranges.emplace_back(Signed(pat[p]), Signed(pat[p]));
      ++p;
    }
    runs.back().push_back(std::move(a));
  }
  // Middle segments that are empty (only possible at the ends) need no search: drop them, but
  // keep the first and last so the anchors stay in place.
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto& atoms = runs[r];
    if (atoms.empty() && r != 0 && r + 1 != runs.size()) continue;
    Segment s;
    s.length = atoms.size();
    s.words = (atoms.size() + 63) / 64;
    s.masks.assign(256 * s.words, 0);
    for (size_t i = 0; i < atoms.size(); ++i) {
      const uint64_t bit = uint64_t{1} << (i % 64);
      const Atom& a = atoms[i];
      // A literal sets one bit: compiling a long literal pattern costs its length, not 256 times.
      if (!a.any && !a.negate && a.ranges.size() == 1 && a.ranges[0].first == a.ranges[0].second) {
        s.masks[static_cast<unsigned char>(a.ranges[0].first) * s.words + i / 64] |= bit;
        continue;
      }
      for (int c = 0; c < 256; ++c) {
        if (a.Matches(static_cast<unsigned char>(c))) s.masks[c * s.words + i / 64] |= bit;
      }
    }
    g.segments_.push_back(std::move(s));
  }
  return g;
}

bool GlobPattern::Segment::MatchesAt(std::string_view text, size_t pos) const {
  if (pos + length > text.size()) return false;
  for (size_t i = 0; i < length; ++i) {
    if (!AtomMatches(i, static_cast<unsigned char>(text[pos + i]))) return false;
  }
  return true;
}

size_t GlobPattern::Segment::Find(std::string_view text, size_t from, size_t end) const {
  if (length == 0) return from;
  if (end < from || end - from < length) return std::string_view::npos;
  // Shift-and: bit i of state is set when the last i+1 bytes read match atoms 0..i.
  std::vector<uint64_t> state(words, 0);
  const uint64_t last_bit = uint64_t{1} << ((length - 1) % 64);
  for (size_t j = from; j < end; ++j) {
    const uint64_t* mask = &masks[static_cast<unsigned char>(text[j]) * words];
    uint64_t carry = 1;  // a match may start at every byte
    for (size_t w = 0; w < words; ++w) {
      uint64_t next_carry = state[w] >> 63;
      state[w] = ((state[w] << 1) | carry) & mask[w];
      carry = next_carry;
    }
    if (state[words - 1] & last_bit) return j + 1 - length;
  }
  return std::string_view::npos;
}

bool GlobPattern::Matches(std::string_view text) const {
  if (!has_star_) return segments_[0].length == text.size() && segments_[0].MatchesAt(text, 0);
  const Segment& first = segments_.front();
  const Segment& last = segments_.back();
  if (first.length + last.length > text.size()) return false;
  if (!first.MatchesAt(text, 0) || !last.MatchesAt(text, text.size() - last.length)) return false;
  // The middle segments, each at its earliest place between the two anchored ends: taking the
  // earliest never loses a match, since anything a later place allows, an earlier one allows too.
  size_t pos = first.length;
  const size_t end = text.size() - last.length;
  for (size_t s = 1; s + 1 < segments_.size(); ++s) {
    size_t at = segments_[s].Find(text, pos, end);
    if (at == std::string_view::npos) return false;
    pos = at + segments_[s].length;
  }
  return true;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  return GlobPattern::Compile(pattern).Matches(text);
}

}  // namespace keyward
