#include "storage/key_dictionary.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "crypto/random.h"
#include "storage/test_providers.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;

class KeyDictionaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kw-dict-" + *RandomHex(6));
    fs::create_directories(root_);
    path_ = (root_ / KeyDictionary::kFileName).string();
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<KeyDictionary> Create(MasterKeyProvider& p) {
    auto d = KeyDictionary::Create(path_, "c-1", p, 1000);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *std::move(d) : nullptr;
  }
  absl::StatusOr<std::unique_ptr<KeyDictionary>> Reopen(MasterKeyProvider& p) {
    return KeyDictionary::Open(path_, "c-1", p);
  }

  fs::path root_;
  std::string path_;
  TestProvider a_{"key-a"};
  TestProvider b_{"key-b"};
};

TEST_F(KeyDictionaryTest, RewrapCallsTheProviderWithoutHoldingTheLock) {
  auto dict = Create(a_);
  ASSERT_NE(dict, nullptr);
  std::atomic<bool> added{false};
  bool added_during_wrap = false;
  std::thread other;
  b_.on_wrap = [&] {
    // A slow key service: another thread adds a data key meanwhile. With the mutex held across
    // Wrap it would block until Rewrap returns.
    other = std::thread([&] { added = dict->AddDataKey(2000).ok(); });
    for (int i = 0; i < 500 && !added; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    added_during_wrap = added;
  };
  ASSERT_TRUE(dict->Rewrap(b_).ok());
  other.join();
  EXPECT_TRUE(added_during_wrap);
  EXPECT_EQ(dict->wrapped_key().key_id, "key-b");
  // The key added during the wrap is in the file written by Rewrap, under the new wrap.
  auto again = Reopen(b_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->size(), 2u);
  EXPECT_FALSE(Reopen(a_).ok());
}

TEST_F(KeyDictionaryTest, RotationDuringRewrapAbortsItAndChangesNothing) {
  auto dict = Create(a_);
  ASSERT_NE(dict, nullptr);
  bool once = false;
  absl::Status inner;
  b_.on_wrap = [&] {
    if (!once) {
      once = true;
      inner = dict->RotateDictionaryKey(a_);
    }
  };
  absl::Status st = dict->Rewrap(b_);
  ASSERT_TRUE(inner.ok()) << inner;
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted) << st;
  EXPECT_NE(st.message().find("run it again"), std::string::npos) << st;
  EXPECT_EQ(dict->wrapped_key().key_id, "key-a");
  EXPECT_TRUE(Reopen(a_).ok());
  // The retry wraps the rotated key.
  ASSERT_TRUE(dict->Rewrap(b_).ok());
  auto again = Reopen(b_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->dictionary_key_id(), dict->dictionary_key_id());
}

TEST_F(KeyDictionaryTest, RotatedDictionaryKeyReplacesTheOldOneAndKeepsDataKeys) {
  auto dict = Create(a_);
  ASSERT_NE(dict, nullptr);
  ASSERT_TRUE(dict->AddDataKey(2000).ok());
  ASSERT_TRUE(dict->AddDataKey(3000).ok());
  SecretBytes old_key = dict->DictionaryKeyForTest();
  std::string old_id = dict->dictionary_key_id();
  ASSERT_EQ(old_id.size(), 16u);
  EXPECT_EQ(old_id.find_first_not_of("0123456789abcdef"), std::string::npos);

  ASSERT_TRUE(dict->RotateDictionaryKey(b_).ok());
  SecretBytes new_key = dict->DictionaryKeyForTest();
  EXPECT_FALSE(new_key.Equals(old_key));
  EXPECT_NE(dict->dictionary_key_id(), old_id);
  EXPECT_EQ(dict->wrapped_key().key_id, "key-b");

  FixedKeyProvider old_only(old_key.Clone());
  auto with_old = Reopen(old_only);
  ASSERT_FALSE(with_old.ok());
  EXPECT_EQ(with_old.status().code(), absl::StatusCode::kDataLoss) << with_old.status();
  FixedKeyProvider new_only(new_key.Clone());
  auto with_new = Reopen(new_only);
  ASSERT_TRUE(with_new.ok()) << with_new.status();
  auto reopened = Reopen(b_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->dictionary_key_id(), dict->dictionary_key_id());
  ASSERT_EQ((*reopened)->DataKeyIds(), (std::vector<uint32_t>{1, 2, 3}));
  for (uint32_t id : dict->DataKeyIds()) {
    EXPECT_TRUE((*reopened)->Find(id)->key.Equals(dict->Find(id)->key)) << id;
  }
  EXPECT_EQ((*reopened)->Current()->id, 3u);
}

TEST_F(KeyDictionaryTest, CreatedWithGivenDataKeysKeepsTheirIdsAndBytesAfterReopen) {
  // A restored cluster's dictionary: the source's data keys 2 and 5, under a new dictionary key.
  std::unique_ptr<KeyDictionary> source = Create(a_);
  ASSERT_TRUE(source->AddDataKey(2000).ok());
  std::vector<std::shared_ptr<const DataKey>> keys = {source->Find(1), source->Find(2)};
  auto made = KeyDictionary::CreateWithDataKeys(path_ + ".new", "c-2", b_, keys, 2);
  ASSERT_TRUE(made.ok()) << made.status();
  auto reopened = KeyDictionary::Open(path_ + ".new", "c-2", b_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->Current()->id, 2u);
  for (uint32_t id : {1u, 2u}) {
    ASSERT_TRUE((*reopened)->Find(id));
    EXPECT_TRUE((*reopened)->Find(id)->key.Equals(source->Find(id)->key));
  }
  // The new dictionary key is not the source's: the source's provider does not open it.
  EXPECT_FALSE(KeyDictionary::Open(path_ + ".new", "c-2", a_).ok());
  // A current key that is not given, or a duplicate id, is refused.
  EXPECT_FALSE(KeyDictionary::CreateWithDataKeys(path_ + ".x", "c-2", b_, keys, 3).ok());
  EXPECT_FALSE(KeyDictionary::CreateWithDataKeys(path_ + ".x", "c-2", b_,
                                                 {source->Find(1), source->Find(1)}, 1)
                   .ok());
}

TEST_F(KeyDictionaryTest, FailedWrapChangesNothing) {
  auto dict = Create(a_);
  ASSERT_NE(dict, nullptr);
  std::string id = dict->dictionary_key_id();
  FixedKeyProvider cannot_wrap(*RandomSecret(32));
  EXPECT_FALSE(dict->RotateDictionaryKey(cannot_wrap).ok());
  EXPECT_FALSE(dict->Rewrap(cannot_wrap).ok());
  EXPECT_EQ(dict->dictionary_key_id(), id);
  EXPECT_TRUE(Reopen(a_).ok());
}

// A KMS that answers a wrap with something else than a wrap of the key it was given.
class ManglingProvider : public TestProvider {
 public:
  enum class How { kFlipByte, kOtherSecret };
  ManglingProvider(std::string name, How how) : TestProvider(std::move(name)), how_(how) {}
  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override {
    if (how_ == How::kOtherSecret) return TestProvider::Wrap(*RandomSecret(32), context);
    auto w = TestProvider::Wrap(plaintext, context);
    if (w.ok()) w->ciphertext[w->ciphertext.size() / 2] ^= 0x01;
    return w;
  }

 private:
  How how_;
};

TEST_F(KeyDictionaryTest, AWrapThatDoesNotUnwrapToTheKeyIsNeverInstalled) {
  auto dict = Create(a_);
  ASSERT_NE(dict, nullptr);
  std::string id = dict->dictionary_key_id();
  for (auto how : {ManglingProvider::How::kFlipByte, ManglingProvider::How::kOtherSecret}) {
    ManglingProvider bad("key-bad", how);
    absl::Status rewrap = dict->Rewrap(bad);
    EXPECT_FALSE(rewrap.ok());
    EXPECT_NE(rewrap.message().find("nothing was changed"), std::string::npos) << rewrap;
    EXPECT_FALSE(dict->RotateDictionaryKey(bad).ok());
    EXPECT_EQ(dict->wrapped_key().key_id, "key-a");
    EXPECT_EQ(dict->dictionary_key_id(), id);
    EXPECT_TRUE(Reopen(a_).ok());
    auto fresh = KeyDictionary::Create((root_ / "fresh.dict").string(), "cluster-1", bad, 1000);
    EXPECT_FALSE(fresh.ok());
    EXPECT_FALSE(std::filesystem::exists(root_ / "fresh.dict"));
  }
}

// A process killed at a random instant while re-wrapping and rotating in a loop leaves a
// dictionary that opens with one of the two providers and holds every data key.
TEST_F(KeyDictionaryTest, KillAtAnyPointLeavesADictionaryThatOpens) {
  auto dict = Create(a_);
  ASSERT_NE(dict, nullptr);
  ASSERT_TRUE(dict->AddDataKey(2000).ok());
  for (int round = 0; round < 20; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (uint64_t i = 0;; ++i) {
        absl::Status st;
        switch (i % 4) {
          case 0:
            st = dict->Rewrap(b_);
            break;
          case 1:
            st = dict->RotateDictionaryKey(a_);
            break;
          case 2:
            st = dict->RotateDictionaryKey(b_);
            break;
          default:
            st = dict->Rewrap(a_);
            break;
        }
        if (!st.ok()) _exit(3);
      }
    }
    uint32_t delay_us = 0;
    ASSERT_TRUE(FillRandom(&delay_us, sizeof(delay_us)).ok());
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + delay_us % 40000));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child stopped by itself: " << status;
    auto with_a = Reopen(a_);
    auto with_b = Reopen(b_);
    ASSERT_TRUE(with_a.ok() || with_b.ok()) << with_a.status() << " / " << with_b.status();
    const auto& opened = with_a.ok() ? *with_a : *with_b;
    ASSERT_EQ(opened->DataKeyIds(), (std::vector<uint32_t>{1, 2})) << "round " << round;
    for (uint32_t id : {1u, 2u}) EXPECT_TRUE(opened->Find(id)->key.Equals(dict->Find(id)->key));
  }
}

}  // namespace
}  // namespace keyward
