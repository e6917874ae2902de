#include "mariadb/galera_layout.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "util/file_util.h"

namespace keyward {
namespace {

constexpr size_t kGaleraMaxStateFile = 64 << 10;

std::string GaleraStatePath(const std::string& data_dir) { return data_dir + "/grastate.dat"; }

}  // namespace

absl::StatusOr<std::vector<GaleraNode>> LoadGaleraPorts(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no Galera port file ", path));
  }
  absl::StatusOr<std::string> text = ReadFileToString(path, kGaleraMaxStateFile);
  if (!text.ok()) return text.status();
  std::vector<GaleraNode> nodes;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    GaleraNode n;
    n.name = absl::StrCat("n", nodes.size());
    uint32_t p[4] = {0, 0, 0, 0};
    bool ok = words.size() == 4;
    for (size_t i = 0; ok && i < 4; ++i) ok = absl::SimpleAtoi(words[i], &p[i]) && p[i] < 65536;
    if (!ok) {
      return absl::DataLossError(absl::StrCat("Galera port file ", path, " is malformed at '",
                                              std::string(line),
                                              "'; expected 4 ports a line (sql galera ist sst)"));
    }
    n.sql_port = static_cast<uint16_t>(p[0]);
    n.galera_port = static_cast<uint16_t>(p[1]);
    n.ist_port = static_cast<uint16_t>(p[2]);
    n.sst_port = static_cast<uint16_t>(p[3]);
    nodes.push_back(n);
  }
  return nodes;
}

absl::Status SaveGaleraPorts(const std::string& path, const std::vector<GaleraNode>& nodes) {
  std::string text;
  for (const GaleraNode& n : nodes) {
    absl::StrAppend(&text, n.sql_port, " ", n.galera_port, " ", n.ist_port, " ", n.sst_port, "\n");
  }
  return WriteFileAtomically(path, text, 0600);
}

GaleraState ParseGaleraState(const std::string& text) {
  GaleraState s;
  s.present = true;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(':', 1));
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (key == "uuid") {
      s.uuid = std::string(value);
    } else if (key == "seqno") {
      if (!absl::SimpleAtoi(value, &s.seqno)) s.seqno = -1;
    } else if (key == "safe_to_bootstrap") {
      s.safe_to_bootstrap = value == "1";
    }
  }
  return s;
}

absl::StatusOr<GaleraState> ReadGaleraState(const std::string& data_dir) {
  const std::string path = GaleraStatePath(data_dir);
  if (access(path.c_str(), F_OK) != 0) return GaleraState{};
  absl::StatusOr<std::string> text = ReadFileToString(path, kGaleraMaxStateFile);
  if (!text.ok()) return text.status();
  return ParseGaleraState(*text);
}

absl::Status MarkSafeToBootstrap(const std::string& data_dir) {
  const std::string path = GaleraStatePath(data_dir);
  absl::StatusOr<std::string> text = ReadFileToString(path, kGaleraMaxStateFile);
  if (!text.ok()) return text.status();
  std::vector<std::string> lines = absl::StrSplit(*text, '\n');
  bool found = false;
  for (std::string& l : lines) {
    if (absl::StartsWith(l, "safe_to_bootstrap:")) {
      l = "safe_to_bootstrap: 1";
      found = true;
    }
  }
  if (!found) lines.insert(lines.end() - (lines.back().empty() ? 1 : 0), "safe_to_bootstrap: 1");
  return WriteFileAtomically(path, absl::StrJoin(lines, "\n"), 0660);
}

std::optional<int64_t> ParseRecoveredSeqno(const std::string& output) {
  static constexpr char kMarker[] = "WSREP: Recovered position: ";
  size_t at = output.rfind(kMarker);
  if (at == std::string::npos) return std::nullopt;
  absl::string_view rest = absl::string_view(output).substr(at + strlen(kMarker));
  rest = rest.substr(0, rest.find_first_of("\r\n"));
  size_t colon = rest.rfind(':');
  int64_t seqno = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(rest.substr(colon + 1)), &seqno)) {
    return std::nullopt;
  }
  return seqno;
}

std::optional<size_t> ChooseBootstrapNode(const std::vector<GaleraState>& states) {
  std::optional<size_t> best;
  for (size_t i = 0; i < states.size(); ++i) {
    const GaleraState& s = states[i];
    if (!s.present) continue;
    if (!best) {
      best = i;
      continue;
    }
    const GaleraState& b = states[*best];
    if (s.seqno > b.seqno || (s.seqno == b.seqno && s.safe_to_bootstrap && !b.safe_to_bootstrap)) {
      best = i;
    }
  }
  return best;
}

}  // namespace keyward
