#pragma once
// The CLI addresses projects, clusters and keys by name or id: `keyward cluster get orders`
// works as well as `cluster get c-0123456789abcdef`. A name is looked up in the lists the caller
// can see (every page); none or several matches are errors that say which ids there are. And
// `--project` may be left out when the caller sees exactly one project.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/api_client.h"

namespace keyward {

// True for an id the server gives out: "<prefix>" followed by 16 lower-case hex digits.
bool LooksLikeId(const std::string& ref, const std::string& prefix);

// Every item of a paged list (follows next_page_token). Prints the API's error and returns
// nullopt on failure.
std::optional<nlohmann::json> ListAll(const ApiClient& api, const std::string& path);

// `ref` (a project name or id) as a project id; prints what went wrong and returns nullopt.
std::optional<std::string> ResolveProject(const ApiClient& api, const std::string& ref);
// The caller's only project, when --project is not given; nullopt (with a message naming the
// projects to choose from) when there are none or several.
std::optional<std::string> OnlyProject(const ApiClient& api, const char* command);
// `ref` (a cluster name or id) as a cluster id; names are looked up in `project_id` when given,
// else in every project the caller sees.
std::optional<std::string> ResolveCluster(const ApiClient& api, const std::string& ref,
                                          const std::optional<std::string>& project_id);
// `ref` (an encryption key id, or its key name or region) as a key id within `project_id`.
std::optional<std::string> ResolveKey(const ApiClient& api, const std::string& project_id,
                                      const std::string& ref);

}  // namespace keyward
