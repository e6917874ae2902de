#pragma once
// SecretBytes holds key material. The buffer is wiped with OPENSSL_cleanse when released or
// resized, cannot be copied by accident (move-only; Clone() is explicit), compares in constant
// time, and deliberately has no operator<< or ToString so it cannot reach a log line.
// Not thread-safe for concurrent mutation; const access from many threads is fine.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace keyward {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size);
  // Copies `bytes` in; the caller remains responsible for wiping its own copy.
  static SecretBytes FromView(std::string_view bytes);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  SecretBytes Clone() const;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // A view for passing to crypto calls; never store it beyond the SecretBytes' lifetime.
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

  // Constant-time for equal sizes.
  bool Equals(const SecretBytes& other) const;

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Wipes a std::string that briefly held secret bytes (e.g. a decrypted record being parsed).
void WipeString(std::string& s);

}  // namespace keyward
