#include "control/key_instructions.h"

#include "control/regions.h"
#include "kms/provider_registry.h"

namespace keyward {

nlohmann::json KeyInstructions(const EncryptionKey& key, const ServiceIdentity& identity) {
  const KmsProviderModule* m = KmsProviderRegistry::Global().Find(key.provider);
  if (m == nullptr) return nlohmann::json::object();
  return m->Instructions(KmsKeyRef::FromRecord(key), identity);
}

nlohmann::json KnownRegionsJson(std::string_view cloud) {
  nlohmann::json regions = nlohmann::json::array();
  for (std::string_view r : KnownRegions(cloud)) regions.push_back(std::string(r));
  return regions;
}

nlohmann::json KeyManagementServices(const ServiceIdentity& identity) {
  nlohmann::json out = nlohmann::json::array();
  for (const KmsProviderModule* m : KmsProviderRegistry::Global().Modules()) {
    if (!m->customer_managed()) continue;
    nlohmann::json s = m->ServiceSetup(identity);
    s["provider"] = m->name();
    s["name"] = m->display_name();
    s["cloud"] = m->cloud();
    s["regions"] = KnownRegionsJson(m->cloud());
    out.push_back(s);
  }
  return out;
}

}  // namespace keyward
