#pragma once
// What the `keyward project|key|cluster|audit` commands share; each noun's commands live in a
// file of their own (cli.cc: projects, audit and dispatch; cli_keys.cc; cli_clusters.cc).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "cli/flags.h"

namespace keyward::cli_commands {

struct CliCtx {
  const ParsedFlags& flags;
  const ApiClient& api;
  const std::vector<std::string>& pos;  // positional arguments after the verb
};

// Prints `problem` and the noun's usage on stderr; returns the exit code 2.
int Usage(const std::string& noun, const std::string& problem);
// The flag's value, else prints that it is required (Usage) and returns nullopt.
std::optional<std::string> Need(const CliCtx& c, const std::string& noun, const char* flag);

int KeyCommand(const std::string& verb, const CliCtx& c);
int ClusterCommand(const std::string& verb, const CliCtx& c);

}  // namespace keyward::cli_commands
