#include "util/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "util/version.h"

namespace keyward::metrics {
namespace {

using LabelPairs = std::vector<std::pair<std::string, std::string>>;

void AppendLabels(const LabelPairs& labels, std::string* out) {
  if (labels.empty()) return;
  out->push_back('{');
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out->push_back(',');
    out->append(labels[i].first);
    out->append("=\"");
    out->append(EscapeLabelValue(labels[i].second));
    out->push_back('"');
  }
  out->push_back('}');
}

CounterFamily& KeyChecks() {
  static CounterFamily& f = []() -> CounterFamily& {
    auto& fam = DefaultRegistry().AddCounter("keyward_key_checks_total",
                                             "Key health checks by result.", {"result"});
    for (const char* r : {"ok", "lost", "transient"}) fam.WithLabels({r});
    return fam;
  }();
  return f;
}

}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";  // cannot happen with 64 bytes; never emit a bad line
  return std::string(buf, end);
}

void Counter::Append(LabelPairs labels, std::vector<Sample>* out) const {
  out->push_back({"", std::move(labels), static_cast<double>(Value())});
}

void Gauge::Append(LabelPairs labels, std::vector<Sample>* out) const {
  out->push_back({"", std::move(labels), static_cast<double>(Value())});
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;  // le: a value on a bound counts in it
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

void Histogram::Append(LabelPairs labels, std::vector<Sample>* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    LabelPairs l = labels;
    l.emplace_back("le", i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf");
    out->push_back({"_bucket", std::move(l), static_cast<double>(cumulative)});
  }
  out->push_back({"_sum", labels, sum_.load(std::memory_order_relaxed)});
  out->push_back({"_count", std::move(labels), static_cast<double>(cumulative)});
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10};
  return kBuckets;
}

template <typename F, typename... A>
F& Registry::Add(const std::string& name, A&&... args) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& f : families_) {
    if (f->name() == name) {
      // Same name, same kind: a programming error otherwise, caught by the unit tests.
      auto* typed = dynamic_cast<F*>(f.get());
      if (typed) return *typed;
      std::fprintf(stderr, "keyward: metric %s registered twice with different types\n",
                   name.c_str());
      std::abort();
    }
  }
  auto f = std::make_unique<F>(name, std::forward<A>(args)...);
  F& ref = *f;
  families_.push_back(std::move(f));
  return ref;
}

CounterFamily& Registry::AddCounter(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  return Add<CounterFamily>(name, help, "counter", std::move(label_names));
}

GaugeFamily& Registry::AddGauge(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names) {
  return Add<GaugeFamily>(name, help, "gauge", std::move(label_names));
}

HistogramFamily& Registry::AddHistogram(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  return Add<HistogramFamily>(name, help, "histogram", std::move(label_names), std::move(bounds));
}

std::string Registry::Render(const std::vector<FamilySnapshot>& extra) const {
  std::vector<FamilySnapshot> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& f : families_) all.push_back(f->Snapshot());
  }
  all.insert(all.end(), extra.begin(), extra.end());
  return RenderFamilies(all);
}

std::string RenderFamilies(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const auto& f : families) {
    out += "# HELP " + f.name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + f.name + " " + f.type + "\n";
    for (const auto& s : f.samples) {
      out += f.name;
      out += s.suffix;
      AppendLabels(s.labels, &out);
      out.push_back(' ');
      out += FormatValue(s.value);
      out.push_back('\n');
    }
  }
  return out;
}

Registry& DefaultRegistry() {
  static Registry* r = new Registry();  // never destroyed: threads may still count at exit
  return *r;
}

void RecordKeyCheck(std::string_view result) {
  KeyChecks().WithLabels({std::string(result)})->Inc();
}

std::vector<FamilySnapshot> ProcessFamilies() {
  std::vector<FamilySnapshot> out;
  if (FILE* f = std::fopen("/proc/self/statm", "re")) {
    unsigned long size = 0, resident = 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) == 2) {
      double bytes = static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
      out.push_back({"process_resident_memory_bytes",
                     "Resident memory size in bytes.",
                     "gauge",
                     {{"", {}, bytes}}});
    }
    std::fclose(f);
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    int own = dirfd(d);
    double n = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (std::string_view(e->d_name) == std::to_string(own)) continue;  // this listing's own fd
      ++n;
    }
    closedir(d);
    out.push_back({"process_open_fds", "Number of open file descriptors.", "gauge", {{"", {}, n}}});
  }
  return out;
}

std::string RenderPrometheusText(const std::vector<FamilySnapshot>& extra) {
  KeyChecks();  // its results appear at 0 before the first check
  std::vector<FamilySnapshot> all = {{"keyward_build_info",
                                      "keyward build information; the value is always 1.",
                                      "gauge",
                                      {{"", {{"version", kKeywardVersion}}, 1}}}};
  for (auto& f : ProcessFamilies()) all.push_back(std::move(f));
  all.insert(all.end(), extra.begin(), extra.end());
  return DefaultRegistry().Render(all);
}

}  // namespace keyward::metrics
