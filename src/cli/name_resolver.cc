#include "cli/name_resolver.h"

#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace keyward {

using nlohmann::json;

bool LooksLikeId(const std::string& ref, const std::string& prefix) {
  if (ref.size() != prefix.size() + 16 || ref.compare(0, prefix.size(), prefix) != 0) return false;
  for (size_t i = prefix.size(); i < ref.size(); ++i) {
    char ch = ref[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  }
  return true;
}

std::optional<json> ListAll(const ApiClient& api, const std::string& path) {
  json all = json::array();
  std::string token;
  for (int pages = 0; pages < 1000; ++pages) {
    std::string sep = path.find('?') == std::string::npos ? "?" : "&";
    std::string url = absl::StrCat(path, sep, "page_size=500");
    if (!token.empty()) absl::StrAppend(&url, "&page_token=", token);
    auto r = api.Call("GET", url);
    if (!r) return std::nullopt;
    for (const auto& item : r->value("items", json::array())) all.push_back(item);
    token = Str(*r, "next_page_token");
    if (token.empty()) break;
  }
  return all;
}

namespace {

// Picks the one item whose `fields` equal `ref`; says what is wrong otherwise.
std::optional<std::string> PickOne(const json& items, const std::string& ref, const char* what,
                                   std::initializer_list<const char*> fields, bool skip_deleted) {
  std::vector<std::string> ids;
  for (const auto& item : items) {
    if (skip_deleted && Str(item, "state") == "deleted") continue;
    for (const char* f : fields) {
      if (Str(item, f) == ref) {
        ids.push_back(Str(item, "id"));
        break;
      }
    }
  }
  if (ids.size() == 1) return ids[0];
  if (ids.empty()) {
    fprintf(stderr, "keyward: no %s named '%s' that you can see (give its id, or check the name)\n",
            what, ref.c_str());
  } else {
    fprintf(stderr, "keyward: %zu %ss are named '%s' (%s); give the id\n", ids.size(), what,
            ref.c_str(), absl::StrJoin(ids, ", ").c_str());
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> ResolveProject(const ApiClient& api, const std::string& ref) {
  if (LooksLikeId(ref, "p-")) return ref;
  auto projects = ListAll(api, "/api/v1/projects");
  if (!projects) return std::nullopt;
  return PickOne(*projects, ref, "project", {"name"}, false);
}

std::optional<std::string> OnlyProject(const ApiClient& api, const char* command) {
  auto projects = ListAll(api, "/api/v1/projects");
  if (!projects) return std::nullopt;
  if (projects->size() == 1) return Str((*projects)[0], "id");
  std::vector<std::string> names;
  for (const auto& p : *projects)
    names.push_back(absl::StrCat(Str(p, "name"), " (", Str(p, "id"), ")"));
  fprintf(stderr, "keyward %s: --project is required: you can see %zu projects%s%s\n", command,
          projects->size(), names.empty() ? "" : ": ", absl::StrJoin(names, ", ").c_str());
  return std::nullopt;
}

std::optional<std::string> ResolveCluster(const ApiClient& api, const std::string& ref,
                                          const std::optional<std::string>& project_id) {
  if (LooksLikeId(ref, "c-")) return ref;
  json clusters = json::array();
  std::vector<std::string> projects;
  if (project_id) {
    projects.push_back(*project_id);
  } else {
    auto all = ListAll(api, "/api/v1/projects");
    if (!all) return std::nullopt;
    for (const auto& p : *all) projects.push_back(Str(p, "id"));
  }
  for (const auto& p : projects) {
    auto some = ListAll(api, "/api/v1/projects/" + p + "/clusters");
    if (!some) return std::nullopt;
    for (auto& c : *some) clusters.push_back(std::move(c));
  }
  return PickOne(clusters, ref, "cluster", {"name"}, true);
}

std::optional<std::string> ResolveKey(const ApiClient& api, const std::string& project_id,
                                      const std::string& ref) {
  if (LooksLikeId(ref, "k-")) return ref;
  auto keys = ListAll(api, "/api/v1/projects/" + project_id + "/encryption-keys");
  if (!keys) return std::nullopt;
  return PickOne(*keys, ref, "encryption key", {"key_name", "region"}, false);
}

}  // namespace keyward
