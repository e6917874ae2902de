#pragma once
// A fake customer KMS for tests only (never linked into the product binary): it stands in for
// Azure Key Vault and AWS KMS behind the KmsFactory seam, the way Tink tests its KMS clients.
//
// Its state is a JSON file the test edits to play the customer's part (create the key, grant
// the role, disable the key), re-read on every call:
//   {"keys": {"<key name or ARN>": {"enabled": true, "purge_protection": true,
//             "region": "eastus", "granted": true, "version": "v1", "secret": "<64 hex>",
//             "exp": <unix seconds, optional>, "nbf": <unix seconds, optional>}},
//    "unreachable": false}

#include <memory>
#include <string>

#include "kms/kms_factory.h"

namespace keyward {

std::unique_ptr<KmsFactory> NewFakeKmsFactory(std::shared_ptr<MasterKeyProvider> escrow,
                                              std::string state_path);

}  // namespace keyward
