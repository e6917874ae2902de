#pragma once
// Master-key providers for storage unit tests only (header-only, included by *_test.cc): no
// network, no files. Not part of any library target.

#include <functional>
#include <string>
#include <utility>

#include "crypto/aes_gcm.h"
#include "crypto/random.h"
#include "kms/master_key_provider.h"

namespace keyward {

// Wraps with AES-256-GCM under its own random key, binding the context as associated data.
// `on_wrap` runs inside Wrap, before the wrap, to play a slow or concurrent key service.
class TestProvider : public MasterKeyProvider {
 public:
  explicit TestProvider(std::string name) : name_(std::move(name)), key_(*RandomSecret(32)) {}

  std::string_view provider_name() const override { return "test"; }
  std::string key_id() const override { return name_; }
  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override {
    ++wraps;
    if (on_wrap) on_wrap();
    auto sealed = GcmSeal(key_, plaintext.view(), context);
    if (!sealed.ok()) return sealed.status();
    return WrappedKey{"test", name_, "1", "A256GCM", *std::move(sealed)};
  }
  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped, std::string_view context) override {
    if (wrapped.key_id != name_) {
      return absl::PermissionDeniedError("wrapped by test key " + wrapped.key_id);
    }
    return GcmOpen(key_, wrapped.ciphertext, context);
  }
  absl::StatusOr<KeyDescription> Describe() override {
    KeyDescription d;
    d.key_id = name_;
    d.enabled = true;
    d.can_wrap = true;
    return d;
  }

  std::function<void()> on_wrap;
  int wraps = 0;

 private:
  std::string name_;
  SecretBytes key_;
};

// "Unwraps" any record to one fixed key: opens a dictionary with a key captured by a test.
class FixedKeyProvider : public MasterKeyProvider {
 public:
  explicit FixedKeyProvider(SecretBytes key) : key_(std::move(key)) {}
  std::string_view provider_name() const override { return "fixed"; }
  std::string key_id() const override { return "fixed"; }
  absl::StatusOr<WrappedKey> Wrap(const SecretBytes&, std::string_view) override {
    return absl::UnimplementedError("fixed-key provider cannot wrap");
  }
  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey&, std::string_view) override {
    return key_.Clone();
  }
  absl::StatusOr<KeyDescription> Describe() override { return KeyDescription{}; }

 private:
  SecretBytes key_;
};

}  // namespace keyward
