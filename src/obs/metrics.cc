// SPDX-License-Identifier: Apache-2.0
#include "rxflow/obs/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>

#include "rxflow/internal/strcat.h"

namespace rxflow::obs {
namespace {

using internal::Append;

enum class Type { kCounter, kGauge, kHistogram };

std::string_view TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Go's strconv.FormatFloat(v, 'g', -1, 64) as Prometheus clients print: integers plainly,
// others in the shortest form that reads back exactly.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::to_chars_result r;
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
  } else {
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  }
  return std::string(buf, r.ptr);
}

void AppendEscaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `a="x",b="y"` with names sorted, or "" when there are no labels. Fails (returns false)
// on an invalid or repeated name, or on `le` for a histogram.
bool RenderLabels(Labels& labels, Type type, std::string& out) {
  std::sort(labels.begin(), labels.end());
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto& [name, value] = labels[i];
    if (!IsLabelName(name) || (type == Type::kHistogram && name == "le")) return false;
    if (i > 0 && labels[i - 1].first == name) return false;
    if (i > 0) out += ',';
    Append(out, name, "=\"");
    AppendEscaped(out, value, /*quote=*/true);
    out += '"';
  }
  return true;
}

struct Series {
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct Family {
  Type type;
  std::string help;
  std::vector<double> buckets;                        // histograms
  std::map<std::string, Series, std::less<>> series;  // by rendered labels
};

void AppendSample(std::string& out, std::string_view name, std::string_view suffix,
                  std::string_view labels, std::string_view extra_label, double value) {
  Append(out, name, suffix);
  if (!labels.empty() || !extra_label.empty()) {
    out += '{';
    out += labels;
    if (!labels.empty() && !extra_label.empty()) out += ',';
    out += extra_label;
    out += '}';
  }
  Append(out, ' ', FormatValue(value), '\n');
}

}  // namespace

const std::vector<double>& DefaultLatencyBuckets() {
  static const auto* const kBuckets =
      new std::vector<double>{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  return *kBuckets;
}

void Counter::Inc(double amount) {
  if (!(amount >= 0)) return;  // also NaN
  value_.fetch_add(amount, std::memory_order_relaxed);
}

void Gauge::Inc(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (bounds_.empty()) bounds_ = DefaultLatencyBuckets();
  std::erase_if(bounds_, [](double b) { return !std::isfinite(b); });
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t n = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    n += counts_[i].load(std::memory_order_relaxed);
    out[i] = n;
  }
  return out;
}

uint64_t Histogram::Count() const { return CumulativeCounts().back(); }

struct Registry::State {
  mutable std::mutex mu;
  std::map<std::string, Family, std::less<>> families;
  // Metrics refused a place in the exposition (see the header), kept for their addresses.
  std::vector<Series> detached;

  std::mutex collectors_mu;
  std::vector<std::shared_ptr<const std::function<void(Registry&)>>> collectors;

  // Finds or creates the series; nullptr when the registration is invalid.
  Series* Find(std::string_view name, std::string_view help, Labels& labels, Type type,
               std::vector<double>* buckets) {
    std::string key;
    if (!IsMetricName(name) || !RenderLabels(labels, type, key)) return nullptr;
    auto fit = families.find(name);
    if (fit == families.end()) {
      Family f{type, std::string(help), {}, {}};
      if (buckets != nullptr) f.buckets = obs::Histogram(std::move(*buckets)).bounds();
      fit = families.emplace(std::string(name), std::move(f)).first;
    } else if (fit->second.type != type) {
      return nullptr;
    }
    Family& f = fit->second;
    auto sit = f.series.find(key);
    if (sit != f.series.end()) return &sit->second;
    Series& s = f.series[std::move(key)];
    switch (type) {
      case Type::kCounter:
        s.counter = std::make_unique<obs::Counter>();
        break;
      case Type::kGauge:
        s.gauge = std::make_unique<obs::Gauge>();
        break;
      case Type::kHistogram:
        s.histogram = std::make_unique<obs::Histogram>(f.buckets);
        break;
    }
    return &s;
  }

  Series& Detached() { return detached.emplace_back(); }
};

Registry::Registry() : state_(std::make_unique<State>()) {}
Registry::~Registry() = default;

obs::Counter& Registry::Counter(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(state_->mu);
  Series* s = state_->Find(name, help, labels, Type::kCounter, nullptr);
  if (s == nullptr) {
    s = &state_->Detached();
    s->counter = std::make_unique<obs::Counter>();
  }
  return *s->counter;
}

obs::Gauge& Registry::Gauge(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(state_->mu);
  Series* s = state_->Find(name, help, labels, Type::kGauge, nullptr);
  if (s == nullptr) {
    s = &state_->Detached();
    s->gauge = std::make_unique<obs::Gauge>();
  }
  return *s->gauge;
}

obs::Histogram& Registry::Histogram(std::string_view name, std::string_view help, Labels labels,
                                    std::vector<double> buckets) {
  std::lock_guard lock(state_->mu);
  Series* s = state_->Find(name, help, labels, Type::kHistogram, &buckets);
  if (s == nullptr) {
    s = &state_->Detached();
    s->histogram = std::make_unique<obs::Histogram>(std::move(buckets));
  }
  return *s->histogram;
}

void Registry::AddCollector(std::function<void(Registry&)> collector) {
  if (!collector) return;
  std::lock_guard lock(state_->collectors_mu);
  state_->collectors.push_back(
      std::make_shared<const std::function<void(Registry&)>>(std::move(collector)));
}

std::string Registry::Expose() const {
  // Collectors run without any registry lock held, so they can register metrics. The
  // registry is only logically const: its state lives behind state_.
  decltype(state_->collectors) collectors;
  {
    std::lock_guard lock(state_->collectors_mu);
    collectors = state_->collectors;
  }
  for (const auto& c : collectors) (*c)(const_cast<Registry&>(*this));

  std::string out;
  std::lock_guard lock(state_->mu);
  for (const auto& [name, family] : state_->families) {
    Append(out, "# HELP ", name, ' ');
    AppendEscaped(out, family.help, /*quote=*/false);
    Append(out, "\n# TYPE ", name, ' ', TypeName(family.type), '\n');
    for (const auto& [labels, s] : family.series) {
      switch (family.type) {
        case Type::kCounter:
          AppendSample(out, name, "", labels, "", s.counter->Value());
          break;
        case Type::kGauge:
          AppendSample(out, name, "", labels, "", s.gauge->Value());
          break;
        case Type::kHistogram: {
          const obs::Histogram& h = *s.histogram;
          // One snapshot, so that +Inf and _count agree.
          std::vector<uint64_t> counts = h.CumulativeCounts();
          for (size_t i = 0; i < counts.size(); ++i) {
            std::string le = internal::Cat(
                "le=\"", i < h.bounds().size() ? FormatValue(h.bounds()[i]) : "+Inf", '"');
            AppendSample(out, name, "_bucket", labels, le, static_cast<double>(counts[i]));
          }
          AppendSample(out, name, "_sum", labels, "", h.Sum());
          AppendSample(out, name, "_count", labels, "", static_cast<double>(counts.back()));
          break;
        }
      }
    }
  }
  return out;
}

Registry& DefaultRegistry() {
  static auto* const kRegistry = new Registry();
  return *kRegistry;
}

}  // namespace rxflow::obs
