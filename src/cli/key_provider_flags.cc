#include "cli/key_provider_flags.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kms/provider_registry.h"

namespace keyward {
namespace {

std::string FlagOf(const KmsConfigField& f) {
  std::string flag = f.name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

}  // namespace

std::set<std::string> KeyProviderFlagNames() {
  std::set<std::string> out = {"provider-config"};
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    for (const KmsConfigField& f : m->config_fields()) out.insert(FlagOf(f));
  }
  return out;
}

absl::StatusOr<nlohmann::json> ProviderConfigFromFlags(const ParsedFlags& flags) {
  nlohmann::json config = nlohmann::json::object();
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    for (const KmsConfigField& f : m->config_fields()) {
      auto v = flags.Get(FlagOf(f));
      if (!v) continue;
      if (f.type == "boolean") {
        config[f.name] = *v == "true";
      } else {
        config[f.name] = *v;
      }
    }
  }
  if (auto raw = flags.Get("provider-config")) {
    nlohmann::json given = nlohmann::json::parse(*raw, nullptr, false);
    if (!given.is_object()) {
      return absl::InvalidArgumentError(
          "--provider-config must be a JSON object such as '{\"key_arn\":\"arn:…\"}'");
    }
    for (const auto& [k, v] : given.items()) config[k] = v;
  }
  return config;
}

std::string KeyProviderFieldsAsFlags(std::string message) {
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t at = message.find(from); at != std::string::npos;
         at = message.find(from, at + to.size())) {
      message.replace(at, from.size(), to);
    }
  };
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    for (const KmsConfigField& f : m->config_fields()) {
      std::string flag = "--" + FlagOf(f);
      replace_all("provider_config." + f.name, flag);
      replace_all(f.name, flag);
    }
  }
  replace_all("provider_config", "the provider's flags");
  return message;
}

std::string KeyCreateUsage() {
  std::string out;
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    if (!m->customer_managed()) continue;
    std::vector<std::string> parts;
    std::set<std::string> groups_done;
    std::vector<KmsConfigField> fields = m->config_fields();
    for (const KmsConfigField& f : fields) {
      std::string one = absl::StrCat("--", FlagOf(f), " ", absl::AsciiStrToUpper(f.name));
      if (!f.one_of.empty()) {
        if (!groups_done.insert(f.one_of).second) continue;
        std::vector<std::string> alts;
        for (const KmsConfigField& g : fields) {
          if (g.one_of == f.one_of) {
            alts.push_back(absl::StrCat("--", FlagOf(g), " ", absl::AsciiStrToUpper(g.name)));
          }
        }
        parts.push_back(absl::StrJoin(alts, " | "));
      } else if (f.required) {
        parts.push_back(one);
      } else {
        parts.push_back(absl::StrCat("[", one, "]"));
      }
    }
    absl::StrAppend(&out, "  keyward key create --project P --provider ", m->name(),
                    " --region R\n");
    // The provider's flags, wrapped under the command.
    std::string line;
    for (const std::string& part : parts) {
      if (!line.empty() && line.size() + part.size() > 78) {
        absl::StrAppend(&out, "                     ", line, "\n");
        line.clear();
      }
      absl::StrAppend(&line, line.empty() ? "" : " ", part);
    }
    if (!line.empty()) absl::StrAppend(&out, "                     ", line, "\n");
  }
  absl::StrAppend(&out,
                  "                     (or --provider-config JSON; see keyward key providers)\n");
  return out;
}

}  // namespace keyward
