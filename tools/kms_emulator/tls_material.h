#pragma once
// The emulator's own certificate authority and server certificate, made with OpenSSL at start.
// The server certificate names the hosts clients use for Azure (*.vault.azure.net,
// *.managedhsm.azure.net, login.microsoftonline.com, management.azure.com) plus 127.0.0.1 and
// localhost; clients reach them on loopback by mapping those names to 127.0.0.1.

#include <string>

#include "absl/status/status.h"

namespace keyward::emulator {

// Writes ca.pem, server.pem and server.key (0600) into `dir`.
absl::Status WriteTlsMaterial(const std::string& dir);

}  // namespace keyward::emulator
