#include "crypto/secret_bytes.h"

#include <openssl/crypto.h>

#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "crypto/secret_arena.h"

namespace keyward {

// Key material lives in memory core dumps leave out (crypto/secret_arena.h).
SecretBytes::SecretBytes(size_t size)
    : data_(static_cast<uint8_t*>(SecretAlloc(size))), size_(size) {}

SecretBytes SecretBytes::FromView(std::string_view bytes) {
  SecretBytes s(bytes.size());
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

SecretBytes::~SecretBytes() { Release(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretBytes SecretBytes::Clone() const { return FromView(view()); }

bool SecretBytes::Equals(const SecretBytes& other) const {
  if (size_ != other.size_) return false;
  if (size_ == 0) return true;
  return CRYPTO_memcmp(data_, other.data_, size_) == 0;
}

void SecretBytes::Release() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    SecretFree(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
}

void WipeString(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace keyward
