#pragma once
// What `main` does with a command line before it picks a command: the client's global flags
// (--server, --token, --output, --data-dir) may come before the noun (`keyward --token T cluster
// list`), as in most CLIs people know (kubectl, gh, az); they are moved behind it, where each
// command's flag reader takes them. And the shell completion scripts (`keyward completion
// bash|zsh`).

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

// `args` without the program name. Leading global flags (with their values) move behind the
// first non-flag argument; "--version"/"-V" anywhere before the noun becomes the `version`
// command. InvalidArgument naming the flag when a global flag lacks its value or an unknown flag
// comes before the noun.
absl::StatusOr<std::vector<std::string>> HoistGlobalFlags(const std::vector<std::string>& args);

// The script for `shell` ("bash" or "zsh"); InvalidArgument for any other shell.
absl::StatusOr<std::string> CompletionScript(const std::string& shell);

}  // namespace keyward
