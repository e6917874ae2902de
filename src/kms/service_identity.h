#pragma once
// keyward's own identities in the customers' clouds (reference: "Microsoft Entra Application
// Name and ID", the AWS principal a key policy names). KMS provider modules show them in their
// setup instructions; serve fills them from flags, credentials or service-identity.json.

#include <string>

namespace keyward {

struct ServiceIdentity {
  std::string azure_app_id;
  std::string azure_app_name;
  std::string aws_principal_arn;
  // True while the server has no credentials of that cloud: the values above were generated
  // (service-identity.json) and nothing real is behind them; the instructions say so.
  bool azure_placeholder = true;
  bool aws_placeholder = true;
};

}  // namespace keyward
