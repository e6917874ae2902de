// keyward-kms-emulator --listen 127.0.0.1:PORT --state-dir DIR
// Prints one JSON line when ready (vault_url_template, authority_host, management_host,
// imds_url, admin_url, ca_file, connect_to, aws_endpoint); stops on SIGTERM/SIGINT.

#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "emulator.h"

namespace {
keyward::emulator::Emulator* g_emulator = nullptr;
}

int main(int argc, char** argv) {
  keyward::emulator::EmulatorOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--listen") {
      auto colon = v.rfind(':');
      if (colon == std::string::npos || !absl::SimpleAtoi(v.substr(colon + 1), &options.port)) {
        fprintf(stderr, "keyward-kms-emulator: --listen wants HOST:PORT\n");
        return 2;
      }
      options.host = v.substr(0, colon);
      ++i;
    } else if (a == "--state-dir") {
      options.state_dir = v;
      ++i;
    } else {
      fprintf(stderr, "usage: keyward-kms-emulator --listen 127.0.0.1:PORT --state-dir DIR\n");
      return a == "--help" ? 0 : 2;
    }
  }
  auto emulator = keyward::emulator::Emulator::New(options);
  if (!emulator.ok()) {
    fprintf(stderr, "keyward-kms-emulator: %s\n", std::string(emulator.status().message()).c_str());
    return 1;
  }
  g_emulator = emulator->get();
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_emulator->Stop(); };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::thread serve([&] { (*emulator)->Serve(); });
  // Give the listener a moment to accept before announcing readiness.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  printf("%s\n", (*emulator)->ReadyLine().c_str());
  fflush(stdout);
  serve.join();
  return 0;
}
