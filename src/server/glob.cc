#include "server/glob.h"

namespace keyward {
namespace {

// Matches one [...] class at pattern[p] (just after '['); advances p past ']'.
bool MatchClass(std::string_view pat, size_t* p, char c) {
  bool negate = *p < pat.size() && pat[*p] == '^';
  if (negate) ++*p;
  bool matched = false;
  while (*p < pat.size() && pat[*p] != ']') {
    if (pat[*p] == '\\' && *p + 1 < pat.size()) {
      ++*p;
      matched |= pat[*p] == c;
      ++*p;
    } else if (*p + 2 < pat.size() && pat[*p + 1] == '-' && pat[*p + 2] != ']') {
      char lo = pat[*p], hi = pat[*p + 2];
      if (lo > hi) std::swap(lo, hi);
      matched |= c >= lo && c <= hi;
      *p += 3;
    } else {
      matched |= pat[*p] == c;
      ++*p;
    }
  }
  if (*p < pat.size()) ++*p;  // skip ']'
  return negate ? !matched : matched;
}

}  // namespace

bool GlobMatch(std::string_view pat, std::string_view text) {
  // Iterative matcher with single-star backtracking: linear memory, no recursion blow-up.
  size_t p = 0, t = 0, star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '*') {
      while (p < pat.size() && pat[p] == '*') ++p;
      if (p == pat.size()) return true;
      star_p = p;
      star_t = t;
      continue;
    }
    bool ok = false;
    size_t next_p = p;
    if (p < pat.size()) {
      if (pat[p] == '?') {
        ok = true;
        next_p = p + 1;
      } else if (pat[p] == '[') {
        next_p = p + 1;
        ok = MatchClass(pat, &next_p, text[t]);
      } else if (pat[p] == '\\' && p + 1 < pat.size()) {
        ok = pat[p + 1] == text[t];
        next_p = p + 2;
      } else {
        ok = pat[p] == text[t];
        next_p = p + 1;
      }
    }
    if (ok) {
      p = next_p;
      ++t;
    } else if (star_p != std::string_view::npos) {
      p = star_p;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

}  // namespace keyward
