// keyward: one binary for the server (`serve`) and the command-line client. Wiring only.

#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.h"
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
  keyward version
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    fputs(kHelp, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "serve")
    return keyward::RunServe(rest, keyward::NewProductKmsFactory);  // product KMS clients only
  if (command == "backup") return keyward::RunBackupCli(rest);
  if (command == "project" || command == "key" || command == "cluster" || command == "audit") {
    return keyward::RunCli(command, rest);
  }
  if (command == "version") {
    printf("keyward %s\n", keyward::kKeywardVersion);
    return 0;
  }
  fprintf(stderr, "keyward: unknown command '%s'\n%s", command.c_str(), kHelp);
  return 2;
}
