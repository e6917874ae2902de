#include "crypto/aes_ctr.h"

#include <openssl/crypto.h>

#include <climits>
#include <cstring>

namespace keyward {
namespace {

// counter = iv + blocks, as a 128-bit big-endian integer.
void CounterAt(const uint8_t iv[kAesBlockSize], uint64_t blocks, uint8_t out[kAesBlockSize]) {
  std::memcpy(out, iv, kAesBlockSize);
  uint64_t carry = blocks;
  for (int i = kAesBlockSize - 1; i >= 0 && carry != 0; --i) {
    uint64_t sum = static_cast<uint64_t>(out[i]) + (carry & 0xff);
    out[i] = static_cast<uint8_t>(sum);
    carry = (carry >> 8) + (sum >> 8);
  }
}

// Fetched once: EVP_aes_256_ctr() makes every EVP_EncryptInit_ex look the implementation up in
// the provider store again (a lock and a property query). Never freed: contexts refer to it
// until the process ends.
const EVP_CIPHER* Aes256Ctr() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr);
  return cipher;
}

// XORs `data` with the keystream from wherever `ctx` stands.
absl::Status XorInPlace(EVP_CIPHER_CTX* ctx, uint8_t* data, size_t len) {
  while (len > 0) {
    int chunk = static_cast<int>(len > (1u << 30) ? (1u << 30) : len);
    int out_len = 0;
    if (EVP_EncryptUpdate(ctx, data, &out_len, data, chunk) != 1 || out_len != chunk) {
      return absl::InternalError("OpenSSL CTR update failed");
    }
    data += chunk;
    len -= static_cast<size_t>(chunk);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CtrCipher>> CtrCipher::New(const SecretBytes& key,
                                                          const uint8_t iv[kAesBlockSize]) {
  if (key.size() != kAes256KeySize) {
    return absl::InvalidArgumentError("AES-256-CTR needs a 32-byte key");
  }
  if (Aes256Ctr() == nullptr) {
    return absl::InternalError("OpenSSL has no AES-256-CTR (is the default provider loaded?)");
  }
  std::unique_ptr<CtrCipher> c(new CtrCipher());
  std::memcpy(c->iv_, iv, kAesBlockSize);
  c->proto_ = EVP_CIPHER_CTX_new();
  if (c->proto_ == nullptr ||
      EVP_EncryptInit_ex2(c->proto_, Aes256Ctr(), key.data(), c->iv_, nullptr) != 1) {
    return absl::InternalError("OpenSSL could not set up AES-256-CTR");
  }
  return c;
}

CtrCipher::~CtrCipher() {
  for (auto& idle : idle_) Free(idle.load(std::memory_order_acquire));
  EVP_CIPHER_CTX_free(proto_);
}

void CtrCipher::Free(Slot* slot) {
  if (slot == nullptr) return;
  EVP_CIPHER_CTX_free(slot->ctx);  // cleanses the key schedule
  delete slot;
}

absl::StatusOr<CtrCipher::Slot*> CtrCipher::Lease() {
  for (auto& idle : idle_) {
    if (idle.load(std::memory_order_relaxed) == nullptr) continue;
    if (Slot* s = idle.exchange(nullptr, std::memory_order_acquire)) return s;
  }
  // Copying the prototype keeps its expanded key schedule (no key setup, no cipher lookup).
  auto s = std::make_unique<Slot>(Slot{EVP_CIPHER_CTX_new(), kUnknownOffset});
  if (s->ctx == nullptr || EVP_CIPHER_CTX_copy(s->ctx, proto_) != 1) {
    Free(s.release());
    return absl::InternalError("OpenSSL could not copy an AES-256-CTR context");
  }
  return s.release();
}

void CtrCipher::Return(Slot* slot) {
  for (auto& idle : idle_) {
    Slot* empty = nullptr;
    if (idle.load(std::memory_order_relaxed) == nullptr &&
        idle.compare_exchange_strong(empty, slot, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      return;
    }
  }
  Free(slot);
}

absl::Status CtrCipher::Apply(uint64_t offset, uint8_t* data, size_t len) {
  // kUnknownOffset must stay out of reach of any range's end.
  if (offset >= kUnknownOffset || len >= kUnknownOffset - offset) {
    return absl::InvalidArgumentError("CTR range overflows the 64-bit offset");
  }
  absl::StatusOr<Slot*> leased = Lease();
  if (!leased.ok()) return leased.status();
  Slot* slot = *leased;
  absl::Status st;
  // A write stream (WAL, SST, compaction output) and a sequential reader continue where the
  // context stands; anything else positions it first. Re-setting only the IV keeps the key
  // schedule.
  if (slot->next_offset != offset) {
    uint8_t counter[kAesBlockSize];
    CounterAt(iv_, offset / kAesBlockSize, counter);
    if (EVP_EncryptInit_ex2(slot->ctx, nullptr, nullptr, counter, nullptr) != 1) {
      st = absl::InternalError("OpenSSL could not reset the CTR counter");
    }
    const size_t skip = offset % kAesBlockSize;
    if (st.ok() && skip != 0) {
      uint8_t discard[kAesBlockSize] = {};
      st = XorInPlace(slot->ctx, discard, skip);
      OPENSSL_cleanse(discard, sizeof(discard));  // keystream
    }
  }
  if (st.ok()) st = XorInPlace(slot->ctx, data, len);
  slot->next_offset = st.ok() ? offset + len : kUnknownOffset;
  Return(slot);
  return st;
}

}  // namespace keyward
