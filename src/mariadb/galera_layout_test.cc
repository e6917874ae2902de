#include "mariadb/galera_layout.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "util/file_util.h"

namespace keyward {
namespace {

std::string GaleraTestDir() {
  std::string dir = std::string(::testing::TempDir()) + "/galera_layout_XXXXXX";
  return mkdtemp(dir.data());
}

TEST(GaleraLayout, PortsRoundTripAndMalformedFileNamed) {
  std::string dir = GaleraTestDir();
  std::vector<GaleraNode> nodes(3);
  for (int i = 0; i < 3; i++) {
    nodes[i].sql_port = static_cast<uint16_t>(3306 + i);
    nodes[i].galera_port = static_cast<uint16_t>(4567 + i);
    nodes[i].ist_port = static_cast<uint16_t>(4600 + i);
    nodes[i].sst_port = static_cast<uint16_t>(4700 + i);
  }
  ASSERT_TRUE(SaveGaleraPorts(dir + "/galera.ports", nodes).ok());
  auto loaded = LoadGaleraPorts(dir + "/galera.ports");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[2].sql_port, 3308);
  EXPECT_EQ((*loaded)[1].sst_port, 4701);
  EXPECT_EQ((*loaded)[2].name, "n2");
  EXPECT_TRUE(absl::IsNotFound(LoadGaleraPorts(dir + "/none").status()));
  ASSERT_TRUE(WriteFileAtomically(dir + "/bad", "1 2 3\n", 0600).ok());
  auto bad = LoadGaleraPorts(dir + "/bad");
  EXPECT_TRUE(absl::IsDataLoss(bad.status()));
  EXPECT_NE(bad.status().message().find(dir + "/bad"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(GaleraLayout, ParsesGrastateAndRecoveredPosition) {
  GaleraState s = ParseGaleraState(
      "# GALERA saved state\nversion: 2.1\nuuid:    0b9e3a5c-1111-11ee-8c3a-5f0e1d2c3b4a\n"
      "seqno:   42\nsafe_to_bootstrap: 1\n");
  EXPECT_TRUE(s.present);
  EXPECT_EQ(s.seqno, 42);
  EXPECT_TRUE(s.safe_to_bootstrap);
  EXPECT_EQ(s.uuid, "0b9e3a5c-1111-11ee-8c3a-5f0e1d2c3b4a");
  EXPECT_EQ(ParseGaleraState("seqno: -1\nsafe_to_bootstrap: 0\n").seqno, -1);
  EXPECT_EQ(ParseRecoveredSeqno("x\n2026-11-29 [Note] WSREP: Recovered position: "
                                "0b9e3a5c-1111-11ee-8c3a-5f0e1d2c3b4a:1234\nmore"),
            1234);
  EXPECT_FALSE(ParseRecoveredSeqno("no position here").has_value());
}

TEST(GaleraLayout, BootstrapsFromTheMostAdvancedNode) {
  auto st = [](int64_t seqno, bool safe) {
    GaleraState s;
    s.present = true;
    s.seqno = seqno;
    s.safe_to_bootstrap = safe;
    return s;
  };
  EXPECT_EQ(ChooseBootstrapNode({st(10, true), st(12, false), st(11, false)}), 1u);
  EXPECT_EQ(ChooseBootstrapNode({st(12, false), st(12, true), st(12, false)}), 1u);
  EXPECT_EQ(ChooseBootstrapNode({st(12, false), st(12, false), st(12, false)}), 0u);
  EXPECT_EQ(ChooseBootstrapNode({GaleraState{}, st(3, false), GaleraState{}}), 1u);
  EXPECT_FALSE(ChooseBootstrapNode({GaleraState{}, GaleraState{}}).has_value());
}

TEST(GaleraLayout, MarkSafeToBootstrapKeepsThePosition) {
  std::string dir = GaleraTestDir();
  ASSERT_TRUE(WriteFileAtomically(dir + "/grastate.dat",
                                  "version: 2.1\nuuid: u\nseqno: 7\nsafe_to_bootstrap: 0\n", 0600)
                  .ok());
  ASSERT_TRUE(MarkSafeToBootstrap(dir).ok());
  auto s = ReadGaleraState(dir);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->seqno, 7);
  EXPECT_TRUE(s->safe_to_bootstrap);
  auto none = ReadGaleraState(dir + "/missing");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->present);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace keyward
