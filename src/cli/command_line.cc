#include "cli/command_line.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace keyward {
namespace {

const std::set<std::string>& GlobalValuedFlags() {
  static const std::set<std::string> flags = {"--server", "--token", "--output", "--data-dir",
                                              "--cacert"};
  return flags;
}

// Commands, their verbs and flags, for completion. Kept beside the usage texts' order.
struct Noun {
  const char* name;
  const char* verbs;
  const char* flags;
};
constexpr Noun kNouns[] = {
    {"serve", "",
     "--data-dir --listen --cluster-host --advertise-host --allow-port-change --tls-cert "
     "--tls-key --tls-self-signed --insecure-plaintext --durability --backup-dir "
     "--key-check-interval --allow-core-dumps --help"},
    {"project", "create list get update add-member", "--name --cmek --role --token-ttl"},
    {"key", "create list get test arm-template update delete",
     "--project --provider --region --key-vault-name --managed-hsm-name --key-name-prefix "
     "--subscription-id --resource-group --key-arn"},
    {"cluster",
     "create list get pause resume delete rotate-dictionary-key reencrypt repair backup-policy "
     "reset-password",
     "--name --project --cloud --region --tier --durability --engine --nodes --all --yes "
     "--with-backups "
     "--wait "
     "--accept-data-loss --schedule --retention-days --dual-region --secondary-region"},
    {"backup", "create list get delete restore", "--name --wait"},
    {"audit", "list", "--project --since-ms --until-ms"},
    {"token", "list create revoke rotate-owner", "--ttl"},
    {"member", "list set-role remove", "--project --role"},
    {"user", "allow-project-create", "--revoke"},
    {"completion", "bash zsh", ""},
    {"version", "", ""},
};
constexpr char kGlobalFlags[] = "--server --token --output --data-dir --cacert --help --version";

std::string BashScript() {
  std::string cases;
  for (const Noun& n : kNouns) {
    absl::StrAppend(&cases, "    ", n.name, ") verbs=\"", n.verbs, "\"; flags=\"", n.flags,
                    "\" ;;\n");
  }
  std::vector<std::string> names;
  for (const Noun& n : kNouns) names.push_back(n.name);
  return absl::StrCat(R"(# keyward completion for bash: source <(keyward completion bash)
_keyward() {
  local cur="${COMP_WORDS[COMP_CWORD]}" noun="" verb="" i w verbs flags
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case "$w" in
      --server|--token|--output|--data-dir|--cacert) ((i++)) ;;
      -*) ;;
      *) if [[ -z "$noun" ]]; then noun="$w"; elif [[ -z "$verb" ]]; then verb="$w"; fi ;;
    esac
  done
  if [[ -z "$noun" ]]; then
    COMPREPLY=($(compgen -W ")",
                      absl::StrJoin(names, " "), " ", kGlobalFlags, R"(" -- "$cur"))
    return
  fi
  case "$noun" in
)",
                      cases, R"(    *) return ;;
  esac
  if [[ "${COMP_WORDS[COMP_CWORD-1]}" == "--output" ]]; then
    COMPREPLY=($(compgen -W "table json" -- "$cur"))
  elif [[ -z "$verb" && -n "$verbs" && "$cur" != -* ]]; then
    COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$flags )",
                      kGlobalFlags, R"(" -- "$cur"))
  fi
}
complete -F _keyward keyward
)");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> HoistGlobalFlags(const std::vector<std::string>& args) {
  std::vector<std::string> globals;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 && a != "-V" && a != "-h") break;
    if (a == "--version" || a == "-V") return std::vector<std::string>{"version"};
    if (a == "--help" || a == "-h") return std::vector<std::string>{"help"};
    std::string name = a.substr(0, a.find('='));
    if (GlobalValuedFlags().count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag ", name, " before the command; flags of a command go after it"));
    }
    globals.push_back(a);
    if (a.find('=') != std::string::npos) continue;
    if (i + 1 >= args.size()) {
      return absl::InvalidArgumentError(absl::StrCat(a, " needs a value"));
    }
    globals.push_back(args[++i]);
  }
  if (i >= args.size()) {
    if (globals.empty()) return std::vector<std::string>{};
    return absl::InvalidArgumentError("which command? (flags alone do nothing)");
  }
  std::vector<std::string> out(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  // Behind every other argument, so `keyward --token T cluster get ID` reads as
  // `cluster get ID --token T` and positional arguments keep their places.
  out.insert(out.end(), globals.begin(), globals.end());
  return out;
}

absl::StatusOr<std::string> CompletionScript(const std::string& shell) {
  if (shell == "bash") return BashScript();
  if (shell == "zsh") {
    // zsh runs bash completion functions through bashcompinit; one script to keep right.
    return absl::StrCat("# keyward completion for zsh: source <(keyward completion zsh)\n",
                        "autoload -U +X bashcompinit && bashcompinit\n", BashScript());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("no completion for shell '", shell, "'; choose bash or zsh"));
}

}  // namespace keyward
