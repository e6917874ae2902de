#pragma once
// Process-wide Prometheus metrics, rendered in the text exposition format 0.0.4.
//
// A family (one metric name, HELP, TYPE and label names) holds one series per tuple of label
// values. Code asks a family once for its series (`WithLabels`) and keeps the shared_ptr: updating
// a series is one relaxed atomic operation, no lock, so hot paths look the series up once per
// connection or object, not per event. The family lock is only taken to find, add or remove a
// series and while rendering. A series removed from its family stays valid for whoever holds it;
// it just no longer appears in the output.
//
// Series that are cheaper to compute than to maintain (clusters by state, process memory) are
// built at scrape time as `FamilySnapshot`s and passed to `RenderPrometheusText`.
//
// Everything here is thread-safe. Families live as long as the process (the registry never
// forgets one), so references to them may be kept in function-local statics.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace keyward::metrics {

// Label values of one series, in the order of its family's label names.
using Labels = std::vector<std::string>;

// One sample line: name suffix ("" or _bucket/_sum/_count), label pairs, value.
struct Sample {
  std::string suffix;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// A whole family as it is rendered.
struct FamilySnapshot {
  std::string name;
  std::string help;
  std::string type;  // "counter" | "gauge" | "histogram"
  std::vector<Sample> samples;
};

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }
  void Append(std::vector<std::pair<std::string, std::string>> labels,
              std::vector<Sample>* out) const;

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }
  void Append(std::vector<std::pair<std::string, std::string>> labels,
              std::vector<Sample>* out) const;

 private:
  std::atomic<int64_t> value_{0};
};

// Bucket upper bounds are given in increasing order; +Inf is implicit. Rendered cumulative, with
// _sum and _count (= the +Inf bucket, read from the same snapshot so the two always agree).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  void Append(std::vector<std::pair<std::string, std::string>> labels,
              std::vector<Sample>* out) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

// Latency buckets from 5 ms to 10 s (KMS calls: local escrow in microseconds, a cloud KMS in tens
// of milliseconds, a struggling one in seconds).
const std::vector<double>& LatencyBuckets();

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::string type,
             std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(std::move(type)),
        label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  virtual FamilySnapshot Snapshot() const = 0;

 protected:
  std::string name_, help_, type_;
  std::vector<std::string> label_names_;
};

template <typename T>
class Family : public FamilyBase {
 public:
  Family(std::string name, std::string help, std::string type, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), std::move(type), std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // The series with these label values (one per label name), created at zero if new.
  std::shared_ptr<T> WithLabels(const Labels& values) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& s = series_[values];
    if (!s) {
      if constexpr (std::is_same_v<T, Histogram>) {
        s = std::make_shared<T>(bounds_);
      } else {
        s = std::make_shared<T>();
      }
    }
    return s;
  }

  // Drops every series whose label number `index` equals `value` (a removed cluster's series).
  void RemoveWhere(size_t index, std::string_view value) {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(series_, [&](const auto& kv) { return kv.first.at(index) == value; });
  }

  FamilySnapshot Snapshot() const override {
    FamilySnapshot f{name_, help_, type_, {}};
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [values, series] : series_) {
      std::vector<std::pair<std::string, std::string>> labels;
      for (size_t i = 0; i < label_names_.size() && i < values.size(); ++i) {
        labels.emplace_back(label_names_[i], values[i]);
      }
      series->Append(std::move(labels), &f.samples);
    }
    return f;
  }

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<Labels, std::shared_ptr<T>> series_;  // ordered: stable output
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  // Adding a name twice returns the family added first (its help and labels win).
  CounterFamily& AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names);
  GaugeFamily& AddGauge(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names);
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names, std::vector<double> bounds);

  // Every family in registration order, then `extra`.
  std::string Render(const std::vector<FamilySnapshot>& extra = {}) const;

 private:
  template <typename F, typename... A>
  F& Add(const std::string& name, A&&... args);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
};

// The process-wide registry every keyward metric lives in.
Registry& DefaultRegistry();

// The default registry plus the process and build families plus `extra` (scrape-time families).
std::string RenderPrometheusText(const std::vector<FamilySnapshot>& extra = {});

// keyward_key_checks_total{result}: one key health check ended with `result` ("ok", "lost",
// "transient"; keep the set small, each value is a series forever).
void RecordKeyCheck(std::string_view result);

// The text format's pieces, exposed for tests.
std::string EscapeLabelValue(std::string_view v);  // backslash, double quote, newline
std::string EscapeHelp(std::string_view v);        // backslash, newline
std::string FormatValue(double v);                 // shortest round-trip; +Inf, -Inf, NaN
std::string RenderFamilies(const std::vector<FamilySnapshot>& families);

// process_resident_memory_bytes and process_open_fds, read from /proc/self now.
std::vector<FamilySnapshot> ProcessFamilies();

}  // namespace keyward::metrics
