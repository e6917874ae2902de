// keyward: one binary for the server (`serve`) and the command-line client. Wiring only.

#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/command_line.h"
#include "cli/serve.h"
#include "util/version.h"

namespace {

constexpr char kHelp[] = R"(keyward: encryption at rest under customer-managed keys

usage:
  keyward serve [--data-dir DIR] [--listen HOST:PORT] ...   run the server (see serve --help)
  keyward project create|list|get|update|add-member ...     projects (see project --help)
  keyward key create|list|get|test|arm-template ...         encryption keys (see key --help)
  keyward cluster create|list|get|pause|resume|delete|backup-policy ...
  keyward audit list --project P                            audit events
  keyward backup create|list|get|delete|restore ...         encrypted backups
  keyward token list|create|revoke|rotate-owner             API tokens (see token --help)
  keyward member list|set-role|remove --project P           project members
  keyward user allow-project-create USER_ID [--revoke]      the project_creator role
  keyward completion bash|zsh                                source <(keyward completion bash)
  keyward version | --version

global flags (before or after the command): --server URL  --token T  --output table|json
  --data-dir DIR  --cacert FILE
)";

}  // namespace

int main(int argc, char** argv) {
  auto hoisted = keyward::HoistGlobalFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (!hoisted.ok()) {
    fprintf(stderr, "keyward: %s\n%s", std::string(hoisted.status().message()).c_str(), kHelp);
    return 2;
  }
  const std::vector<std::string>& args = *hoisted;
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    fputs(kHelp, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "serve")
    return keyward::RunServe(rest, keyward::NewProductKmsFactory);  // product KMS clients only
  if (command == "backup") return keyward::RunBackupCli(rest);
  if (command == "token" || command == "member" || command == "user") {
    return keyward::RunAccountsCli(command, rest);
  }
  if (command == "project" || command == "key" || command == "cluster" || command == "audit") {
    return keyward::RunCli(command, rest);
  }
  if (command == "version") {
    printf("keyward %s\n", keyward::kKeywardVersion);
    return 0;
  }
  if (command == "completion") {
    auto script = keyward::CompletionScript(rest.empty() ? "" : rest[0]);
    if (!script.ok() || rest.size() != 1) {
      fprintf(stderr, "keyward completion: %s\nusage: keyward completion bash|zsh\n",
              script.ok() ? "give one shell" : std::string(script.status().message()).c_str());
      return 2;
    }
    fputs(script->c_str(), stdout);
    return 0;
  }
  fprintf(stderr, "keyward: unknown command '%s'\n%s", command.c_str(), kHelp);
  return 2;
}
