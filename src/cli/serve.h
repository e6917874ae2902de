#pragma once
// `keyward serve`: control plane and data plane in one process.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kms/kms_factory.h"
#include "kms/serve_settings.h"

namespace keyward {

// Builds the KMS factory once the escrow provider exists: the product passes
// NewProductKmsFactory; test builds may pass a fake.
// `settings` holds each KMS provider module's serve settings by provider name
// (kms/serve_settings.h).
using KmsFactoryMaker = std::function<std::unique_ptr<KmsFactory>(
    std::shared_ptr<MasterKeyProvider> escrow, const KmsServeConfig& settings)>;

int RunServe(const std::vector<std::string>& args, const KmsFactoryMaker& make_kms);

}  // namespace keyward
