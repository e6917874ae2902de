#include "server/resp_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace keyward {
namespace {

struct Result {
  ParseOutcome outcome;
  size_t consumed = 0;
  std::vector<std::string> args;
  std::string error;
};

Result Parse(const RespLimits& limits, std::string_view buf) {
  Result r;
  r.outcome = RespParser(limits).Parse(buf, &r.consumed, &r.args, &r.error);
  return r;
}

TEST(RespParserTest, ParsesArrayAndInline) {
  Result a = Parse({}, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nrest");
  ASSERT_EQ(a.outcome, ParseOutcome::kCommand);
  EXPECT_EQ(a.consumed, 20u);
  EXPECT_EQ(a.args, (std::vector<std::string>{"GET", "k"}));
  Result i = Parse({}, "PING hello\r\n");
  ASSERT_EQ(i.outcome, ParseOutcome::kCommand);
  EXPECT_EQ(i.args, (std::vector<std::string>{"PING", "hello"}));
  EXPECT_EQ(Parse({}, "*2\r\n$3\r\nGET\r\n$1\r\n").outcome, ParseOutcome::kNeedMore);
}

// The flood from issue 8: `*1000` then 64 MiB bulk strings, before AUTH. Refused on the first
// header, before any of the 64 MiB arrives.
TEST(RespParserTest, PreAuthRefusesHugeDeclaredBulkBeforeItsBytes) {
  Result r = Parse(RespLimits::PreAuth(), "*3\r\n$4\r\nAUTH\r\n$67108864\r\n");
  ASSERT_EQ(r.outcome, ParseOutcome::kProtocolError);
  EXPECT_NE(r.error.find("invalid bulk length"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("4096"), std::string::npos) << r.error;
}

TEST(RespParserTest, PreAuthRefusesLargeMultibulkCount) {
  Result r = Parse(RespLimits::PreAuth(), "*1000\r\n");
  ASSERT_EQ(r.outcome, ParseOutcome::kProtocolError);
  EXPECT_NE(r.error.find("invalid multibulk length"), std::string::npos) << r.error;
  // The same header is fine once authenticated.
  EXPECT_EQ(Parse({}, "*1000\r\n").outcome, ParseOutcome::kNeedMore);
}

TEST(RespParserTest, PreAuthAcceptsAuthWithLongPassword) {
  std::string password(4096, 'p');
  std::string cmd = "*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$4096\r\n" + password + "\r\n";
  Result r = Parse(RespLimits::PreAuth(), cmd);
  ASSERT_EQ(r.outcome, ParseOutcome::kCommand) << r.error;
  EXPECT_EQ(r.args.back(), password);
}

TEST(RespParserTest, PreAuthRefusesLongInlineLineWithoutNewline) {
  std::string junk(5000, 'A');
  Result r = Parse(RespLimits::PreAuth(), junk);
  ASSERT_EQ(r.outcome, ParseOutcome::kProtocolError);
  EXPECT_NE(r.error.find("too big inline request"), std::string::npos);
  EXPECT_EQ(Parse({}, junk).outcome, ParseOutcome::kNeedMore);
}

// Many arguments each under the bulk limit still cannot add up past the request limit: refused
// when the header that crosses it arrives.
TEST(RespParserTest, RefusesRequestWhoseDeclaredTotalExceedsTheLimit) {
  RespLimits limits;
  limits.max_bulk_bytes = 100;
  limits.max_request_bytes = 250;
  std::string arg(100, 'x');
  std::string cmd = "*5\r\n";
  for (int i = 0; i < 2; ++i) cmd += "$100\r\n" + arg + "\r\n";
  EXPECT_EQ(Parse(limits, cmd).outcome, ParseOutcome::kNeedMore);
  Result r = Parse(limits, cmd + "$100\r\n");
  ASSERT_EQ(r.outcome, ParseOutcome::kProtocolError);
  EXPECT_NE(r.error.find("request too big"), std::string::npos) << r.error;
}

TEST(RespParserTest, RefusesMalformedLengths) {
  EXPECT_EQ(Parse({}, "*x\r\n").outcome, ParseOutcome::kProtocolError);
  EXPECT_EQ(Parse({}, "*1\r\n$-5\r\n").outcome, ParseOutcome::kProtocolError);
  EXPECT_EQ(Parse({}, "*1\r\n$" + std::string(40, '9')).outcome, ParseOutcome::kProtocolError);
  EXPECT_EQ(Parse({}, "*1\r\n$1\r\nab\r\n").outcome, ParseOutcome::kProtocolError);
}

// Found by resp_parser_fuzz: a length line of leading zeros over 32 bytes was refused with one
// message while its CRLF had not arrived and another once it had.
TEST(RespParserTest, ALongLengthLineGetsOneAnswerWhereverTheNetworkCutIt) {
  std::string line = "*" + std::string(40, '0') + "7";
  Result partial = Parse({}, line);
  Result whole = Parse({}, line + "\r\n");
  ASSERT_EQ(partial.outcome, ParseOutcome::kProtocolError);
  ASSERT_EQ(whole.outcome, ParseOutcome::kProtocolError);
  EXPECT_EQ(partial.error, whole.error);
}

}  // namespace
}  // namespace keyward
