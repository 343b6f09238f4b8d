// SPDX-License-Identifier: Apache-2.0
// File: rxflow/runtime/resilience.h
//
// The runtime's building blocks: a circuit breaker, exponential backoff with jitter, and a
// sharded worker pool with bounded queues. No I/O; time comes from the injected Clock.
#ifndef RXFLOW_RUNTIME_RESILIENCE_H_
#define RXFLOW_RUNTIME_RESILIENCE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "rxflow/clock.h"

namespace rxflow::runtime {

struct CircuitBreakerOptions {
  int failure_threshold = 5;                 // consecutive failures that open the breaker
  std::chrono::milliseconds open_for{1000};  // then one probe is let through (half-open)
  int half_open_successes = 1;               // successful probes that close it again
};

// Closed → (failure_threshold consecutive failures) → Open → (open_for elapsed) →
// HalfOpen: one call at a time is allowed; a success closes it, a failure opens it again.
// Thread-safe.
class CircuitBreaker {
 public:
  enum class State { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
  explicit CircuitBreaker(CircuitBreakerOptions options = {}, Clock* clock = nullptr);

  // Whether a call may go ahead now. In HalfOpen only one caller gets true until it reports.
  bool Allow();
  void RecordSuccess();
  void RecordFailure();
  State state() const;
  // Microseconds until an open breaker lets a probe through (0 when not open).
  int64_t RetryInMicros() const;
  int64_t opened_count() const;  // times it opened

 private:
  CircuitBreakerOptions options_;
  Clock& clock_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;
  int failures_ = 0;
  int probe_successes_ = 0;
  bool probe_in_flight_ = false;
  int64_t opened_at_ = 0;
  int64_t opened_count_ = 0;
};

std::string_view BreakerStateName(CircuitBreaker::State s);

struct BackoffOptions {
  std::chrono::milliseconds base{100};
  std::chrono::milliseconds max{5000};
  double multiplier = 2.0;
};

// The delay before retry `attempt` (1-based): "full jitter", uniform in
// [0, min(max, base * multiplier^(attempt-1))], so retrying clients spread out.
std::chrono::microseconds BackoffDelay(const BackoffOptions& options, int attempt);

// N worker threads, each with its own bounded FIFO queue: tasks of one shard run in order
// on one thread (per-partition order). Submit blocks while the shard's queue is full
// (backpressure on the producer of the work). Drain finishes every queued task, then
// stops the threads.
class ShardedWorkerPool {
 public:
  ShardedWorkerPool(int workers, size_t queue_capacity);
  ~ShardedWorkerPool();  // Drain()
  ShardedWorkerPool(const ShardedWorkerPool&) = delete;
  ShardedWorkerPool& operator=(const ShardedWorkerPool&) = delete;

  // False when the pool is draining (the task is not run).
  bool Submit(size_t shard, std::function<void()> task);
  void Drain();
  size_t workers() const { return shards_.size(); }
  size_t queued() const;  // tasks waiting, all shards

 private:
  struct Shard {
    std::mutex mu;
    std::condition_variable not_empty, not_full;
    std::deque<std::function<void()>> queue;
    bool stopping = false;
    std::thread thread;
  };
  void Run(Shard& s);
  size_t capacity_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::mutex drain_mu_;
  bool drained_ = false;
};

}  // namespace rxflow::runtime

#endif  // RXFLOW_RUNTIME_RESILIENCE_H_
