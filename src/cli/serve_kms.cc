#include "cli/serve_kms.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {

absl::StatusOr<ServeKms> LoadServeKms(const ParsedFlags& flags, const std::string& data_dir,
                                      const KmsProviderRegistry& registry) {
  std::string path = data_dir + "/service-identity.json";
  nlohmann::json stored = nlohmann::json::object();
  if (access(path.c_str(), F_OK) == 0) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, 65536));
    stored = nlohmann::json::parse(text, nullptr, false);
    if (!stored.is_object()) return absl::DataLossError(absl::StrCat(path, " is not valid JSON"));
  }
  const nlohmann::json before = stored;
  ServeKms out;
  KmsFlagValues values(flags.values);
  for (const KmsProviderModule* m : registry.Modules()) {
    ASSIGN_OR_RETURN(std::shared_ptr<const KmsServeSettings> s,
                     m->LoadServeSettings(values, stored, out.identity));
    if (s) out.settings[m->name()] = std::move(s);
  }
  // What the modules generated on first start is kept, so customers' grants stay valid.
  if (stored != before) RETURN_IF_ERROR(WriteFileAtomically(path, stored.dump(2) + "\n", 0600));
  return out;
}

}  // namespace keyward
