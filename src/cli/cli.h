#pragma once
// The command-line client of the REST API: `keyward project|key|cluster|audit …`.

#include <string>
#include <vector>

namespace keyward {

// `noun` is project, key, cluster or audit; returns the process exit code
// (0 ok, 1 the API refused or failed, 2 bad command line).
int RunCli(const std::string& noun, const std::vector<std::string>& args);
// `keyward backup …` (backup_cli.cc); same exit codes.
int RunBackupCli(const std::vector<std::string>& args);
// `keyward token|member|user …` (accounts_cli.cc); same exit codes.
int RunAccountsCli(const std::string& noun, const std::vector<std::string>& args);

}  // namespace keyward
