#pragma once
// `keyward serve`: control plane and data plane in one process.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kms/kms_factory.h"

namespace keyward {

// Builds the KMS factory once the escrow provider exists: the product passes
// NewProductKmsFactory; test builds may pass a fake.
using KmsFactoryMaker = std::function<std::unique_ptr<KmsFactory>(
    std::shared_ptr<MasterKeyProvider> escrow, std::optional<AzureSettings> azure,
    std::optional<AwsKmsSettings> aws)>;

int RunServe(const std::vector<std::string>& args, const KmsFactoryMaker& make_kms);

}  // namespace keyward
