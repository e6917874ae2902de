#include "util/log.h"

#include <gtest/gtest.h>

namespace keyward {
namespace {

TEST(Log, OneJsonObjectPerLineWithTimeLevelEventAndFields) {
  std::string line =
      FormatLogLine(LogLevel::kWarn, "cluster.degraded", "cluster c-1 \"degraded\"\n",
                    {{"cluster_id", "c-1"}, {"bytes", 42}}, 1795937400123);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2026-11-29T07:30:00.123Z");
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["event"], "cluster.degraded");
  EXPECT_EQ(j["msg"], "cluster c-1 \"degraded\"\n");
  EXPECT_EQ(j["cluster_id"], "c-1");
  EXPECT_EQ(j["bytes"], 42);
}

TEST(Log, InvalidUtf8IsReplacedNotThrown) {
  std::string line = FormatLogLine(LogLevel::kInfo, "e", std::string("bad \xff\xfe bytes"), {}, 0);
  EXPECT_TRUE(nlohmann::json::accept(line));
}

TEST(Log, EscapesAndTypesMatchAJsonParser) {
  std::string text =
      std::string("tab\t nul") + '\0' + " quote\" back\\ é ☃ 😀 \xc0\xaf \xed\xa0\x80";
  auto j = nlohmann::json::parse(FormatLogLine(LogLevel::kError, "e", text,
                                               {{"neg", -5},
                                                {"big", uint64_t{18446744073709551615u}},
                                                {"f", 1.5},
                                                {"b", true},
                                                {"n", nullptr}},
                                               0));
  std::string parsed = j["msg"];
  EXPECT_EQ(parsed.substr(0, 9), std::string("tab\t nul") + '\0');
  EXPECT_NE(parsed.find("quote\" back\\ é ☃ 😀 "), std::string::npos);
  EXPECT_NE(parsed.find("\xef\xbf\xbd"), std::string::npos);  // overlong and surrogate replaced
  EXPECT_EQ(parsed.find("\xc0"), std::string::npos);
  EXPECT_EQ(j["neg"], -5);
  EXPECT_EQ(j["big"], 18446744073709551615u);
  EXPECT_EQ(j["f"], 1.5);
  EXPECT_EQ(j["b"], true);
  EXPECT_TRUE(j["n"].is_null());
}

TEST(Log, FieldsCannotOverwriteTheFixedOnes) {
  auto j = nlohmann::json::parse(
      FormatLogLine(LogLevel::kInfo, "real", "m", {{"event", "forged"}, {"level", "x"}}, 0));
  EXPECT_EQ(j["event"], "real");
  EXPECT_EQ(j["level"], "info");
}

TEST(Log, LinesBelowTheLevelAreDropped) {
  std::vector<std::string> seen;
  SetLogSinkForTest([&](const std::string& l) { seen.push_back(l); });
  SetLogLevel(LogLevel::kWarn);
  LogInfo("quiet", "not shown");
  LogWarn("loud", "shown");
  SetLogLevel(LogLevel::kInfo);
  SetLogSinkForTest(nullptr);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(seen[0])["event"], "loud");
  EXPECT_EQ(ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_FALSE(ParseLogLevel("verbose").has_value());
}

}  // namespace
}  // namespace keyward
