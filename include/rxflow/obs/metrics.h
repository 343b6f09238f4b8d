// SPDX-License-Identifier: Apache-2.0
// File: rxflow/obs/metrics.h
//
// A small Prometheus metrics registry: counters, gauges and histograms, grouped in
// families by name, exposed in the Prometheus text format 0.0.4 (what `/metrics` serves).
//
//   obs::Registry& r = obs::DefaultRegistry();
//   obs::Counter& ok = r.Counter("rxflow_requests_total", "HTTP requests served.",
//                                {{"route", "/prescriptions"}, {"code", "201"}});
//   ok.Inc();
//   r.Histogram("rxflow_request_seconds", "Request latency.", {}).Observe(0.012);
//
// Look a metric up once and keep the reference: the registry owns every metric for its own
// lifetime and never moves it. The same name and labels give the same object (labels are
// compared as a set: their order does not matter; they are printed sorted by name).
//
// Thread-safety: everything is safe for concurrent use. Counter, Gauge and Histogram
// updates are lock-free (atomics); registration and Expose take the registry's mutex.
//
// Misuse is not fatal: an invalid metric or label name, or a name already registered with
// another type, gives a working metric that is never exposed. A family's help text and
// histogram buckets are those of its first registration.
#ifndef RXFLOW_OBS_METRICS_H_
#define RXFLOW_OBS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rxflow::obs {

// Label name/value pairs, e.g. {{"method", "POST"}, {"code", "201"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The default latency buckets in seconds: .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1
// 2.5 5 10 (and +Inf).
const std::vector<double>& DefaultLatencyBuckets();

// A monotonically increasing value. Inc with a negative or NaN amount is ignored.
class Counter {
 public:
  void Inc(double amount = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Inc(double amount = 1);
  void Dec(double amount = 1) { Inc(-amount); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted in cumulative buckets (upper bounds, inclusive) plus their sum.
class Histogram {
 public:
  // `bounds`: the finite upper bounds; sorted and deduplicated here, +Inf is implicit.
  // Empty means DefaultLatencyBuckets().
  explicit Histogram(std::vector<double> bounds);

  // Records one observation (for latencies: seconds). NaN is ignored.
  void Observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i], one per bound and then the +Inf bucket (= Count()): a
  // consistent snapshot, each bucket read once.
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t Count() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0};
};

// Owns metric families and renders them. Not copyable or movable.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Finds or creates the metric `name`{labels}. The reference stays valid for the
  // registry's lifetime.
  obs::Counter& Counter(std::string_view name, std::string_view help, Labels labels = {});
  obs::Gauge& Gauge(std::string_view name, std::string_view help, Labels labels = {});
  // `buckets` as for Histogram (empty: DefaultLatencyBuckets()).
  obs::Histogram& Histogram(std::string_view name, std::string_view help, Labels labels = {},
                            std::vector<double> buckets = {});

  // Adds a function called at the start of every Expose, so a component can refresh its
  // gauges (an outbox backlog, a pool size). It may register and update metrics; it must be
  // thread-safe if Expose is called from several threads, and must not call Expose.
  // Collectors live as long as the registry (there is no removal): capture only what
  // outlives it.
  void AddCollector(std::function<void(Registry&)> collector);

  // The Prometheus text format 0.0.4 (Content-Type "text/plain; version=0.0.4"): families
  // sorted by name, each with its # HELP and # TYPE lines, then its series sorted by labels.
  // Runs the collectors first.
  std::string Expose() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The process-wide registry. Never destroyed (safe to use from static destructors).
Registry& DefaultRegistry();

}  // namespace rxflow::obs

#endif  // RXFLOW_OBS_METRICS_H_
