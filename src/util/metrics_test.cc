#include "util/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace keyward::metrics {
namespace {

TEST(Metrics, RendersHelpTypeAndSamplesInLabelOrder) {
  Registry r;
  auto& c = r.AddCounter("t_requests_total", "Requests.", {"method", "code"});
  c.WithLabels({"get", "200"})->Inc(3);
  c.WithLabels({"post", "500"})->Inc();
  auto& g = r.AddGauge("t_open", "Open things.", {});
  g.WithLabels({})->Set(-2);
  EXPECT_EQ(r.Render(),
            "# HELP t_requests_total Requests.\n"
            "# TYPE t_requests_total counter\n"
            "t_requests_total{method=\"get\",code=\"200\"} 3\n"
            "t_requests_total{method=\"post\",code=\"500\"} 1\n"
            "# HELP t_open Open things.\n"
            "# TYPE t_open gauge\n"
            "t_open -2\n");
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeHelp("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
  Registry r;
  r.AddCounter("t_x_total", "Line one\nline two.", {"v"}).WithLabels({"say \"hi\"\\\n"})->Inc();
  EXPECT_EQ(r.Render(),
            "# HELP t_x_total Line one\\nline two.\n"
            "# TYPE t_x_total counter\n"
            "t_x_total{v=\"say \\\"hi\\\"\\\\\\n\"} 1\n");
}

TEST(Metrics, FormatsValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(0.005), "0.005");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  auto h = r.AddHistogram("t_seconds", "Latency.", {"op"}, {0.25, 1}).WithLabels({"wrap"});
  h->Observe(0.125);  // binary fractions: an exact _sum
  h->Observe(0.25);   // on the bound: counts in le="0.25"
  h->Observe(0.5);
  h->Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP t_seconds Latency.\n"
            "# TYPE t_seconds histogram\n"
            "t_seconds_bucket{op=\"wrap\",le=\"0.25\"} 2\n"
            "t_seconds_bucket{op=\"wrap\",le=\"1\"} 3\n"
            "t_seconds_bucket{op=\"wrap\",le=\"+Inf\"} 4\n"
            "t_seconds_sum{op=\"wrap\"} 7.875\n"
            "t_seconds_count{op=\"wrap\"} 4\n");
}

TEST(Metrics, EmptyFamilyKeepsHelpAndTypeAndRemoveWhereDropsSeries) {
  Registry r;
  auto& f = r.AddGauge("t_conns", "Connections.", {"cluster"});
  auto held = f.WithLabels({"c1"});
  f.WithLabels({"c2"})->Set(5);
  f.RemoveWhere(0, "c1");
  held->Add(1);  // still valid for its holder, just not rendered
  EXPECT_EQ(r.Render(),
            "# HELP t_conns Connections.\n# TYPE t_conns gauge\nt_conns{cluster=\"c2\"} 5\n");
  f.RemoveWhere(0, "c2");
  EXPECT_EQ(r.Render(), "# HELP t_conns Connections.\n# TYPE t_conns gauge\n");
}

TEST(Metrics, AddingANameTwiceReturnsTheSameFamily) {
  Registry r;
  auto& a = r.AddCounter("t_total", "A.", {"x"});
  auto& b = r.AddCounter("t_total", "B.", {"x"});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a.WithLabels({"1"}), b.WithLabels({"1"}));
}

TEST(Metrics, CountersAreExactUnderConcurrency) {
  Registry r;
  auto& f = r.AddCounter("t_total", "T.", {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      auto c = f.WithLabels({});
      for (int i = 0; i < 10000; ++i) c->Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(f.WithLabels({})->Value(), 40000u);
}

TEST(Metrics, DefaultRenderHasKeyChecksBuildAndProcessFamilies) {
  std::string before = RenderPrometheusText();
  EXPECT_NE(before.find("keyward_key_checks_total{result=\"lost\"} 0\n"), std::string::npos)
      << before;
  EXPECT_NE(before.find("keyward_key_checks_total{result=\"transient\"} 0\n"), std::string::npos);
  RecordKeyCheck("lost");
  std::string after = RenderPrometheusText({{"t_extra", "Extra.", "gauge", {{"", {}, 9}}}});
  EXPECT_NE(after.find("keyward_key_checks_total{result=\"lost\"} 1\n"), std::string::npos);
  EXPECT_NE(after.find("keyward_build_info{version=\""), std::string::npos);
  EXPECT_NE(after.find("\nprocess_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(after.find("\nprocess_open_fds "), std::string::npos);
  EXPECT_NE(after.find("# TYPE t_extra gauge\nt_extra 9\n"), std::string::npos);
}

}  // namespace
}  // namespace keyward::metrics
