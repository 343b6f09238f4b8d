// SPDX-License-Identifier: Apache-2.0
#include "rxflow/runtime/resilience.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

namespace rxflow::runtime {

CircuitBreaker::CircuitBreaker(CircuitBreakerOptions options, Clock* clock)
    : options_(options), clock_(clock ? *clock : SystemClock()) {
  options_.failure_threshold = std::max(1, options_.failure_threshold);
  options_.half_open_successes = std::max(1, options_.half_open_successes);
}

bool CircuitBreaker::Allow() {
  std::lock_guard lock(mu_);
  if (state_ == State::kOpen) {
    if (clock_.NowMicros() - opened_at_ < options_.open_for.count() * 1000) return false;
    state_ = State::kHalfOpen;
    probe_successes_ = 0;
    probe_in_flight_ = false;
  }
  if (state_ == State::kHalfOpen) {
    if (probe_in_flight_) return false;
    probe_in_flight_ = true;
  }
  return true;
}

void CircuitBreaker::RecordSuccess() {
  std::lock_guard lock(mu_);
  failures_ = 0;
  if (state_ == State::kHalfOpen) {
    probe_in_flight_ = false;
    if (++probe_successes_ >= options_.half_open_successes) state_ = State::kClosed;
  }
}

void CircuitBreaker::RecordFailure() {
  std::lock_guard lock(mu_);
  if (state_ == State::kHalfOpen || ++failures_ >= options_.failure_threshold) {
    if (state_ != State::kOpen) ++opened_count_;
    state_ = State::kOpen;
    opened_at_ = clock_.NowMicros();
    probe_in_flight_ = false;
    failures_ = 0;
  }
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

int64_t CircuitBreaker::RetryInMicros() const {
  std::lock_guard lock(mu_);
  if (state_ != State::kOpen) return 0;
  return std::max<int64_t>(0, opened_at_ + options_.open_for.count() * 1000 - clock_.NowMicros());
}

int64_t CircuitBreaker::opened_count() const {
  std::lock_guard lock(mu_);
  return opened_count_;
}

std::string_view BreakerStateName(CircuitBreaker::State s) {
  switch (s) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

std::chrono::microseconds BackoffDelay(const BackoffOptions& o, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  double cap = static_cast<double>(o.base.count()) * 1000.0 *
               std::pow(o.multiplier, std::max(0, attempt - 1));
  cap = std::min(cap, static_cast<double>(o.max.count()) * 1000.0);
  std::uniform_real_distribution<double> jitter(0.0, cap);
  return std::chrono::microseconds(static_cast<int64_t>(jitter(rng)));
}

ShardedWorkerPool::ShardedWorkerPool(int workers, size_t queue_capacity)
    : capacity_(std::max<size_t>(1, queue_capacity)) {
  for (int i = 0; i < std::max(1, workers); ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  for (auto& s : shards_) s->thread = std::thread([this, &s = *s] { Run(s); });
}

ShardedWorkerPool::~ShardedWorkerPool() { Drain(); }

bool ShardedWorkerPool::Submit(size_t shard, std::function<void()> task) {
  Shard& s = *shards_[shard % shards_.size()];
  std::unique_lock lock(s.mu);
  s.not_full.wait(lock, [&] { return s.stopping || s.queue.size() < capacity_; });
  if (s.stopping) return false;
  s.queue.push_back(std::move(task));
  s.not_empty.notify_one();
  return true;
}

void ShardedWorkerPool::Run(Shard& s) {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(s.mu);
      s.not_empty.wait(lock, [&] { return s.stopping || !s.queue.empty(); });
      if (s.queue.empty()) return;  // stopping and drained
      task = std::move(s.queue.front());
      s.queue.pop_front();
      s.not_full.notify_one();
    }
    task();
  }
}

void ShardedWorkerPool::Drain() {
  std::lock_guard drain(drain_mu_);
  if (drained_) return;
  drained_ = true;
  for (auto& s : shards_) {
    std::lock_guard lock(s->mu);
    s->stopping = true;
    s->not_empty.notify_all();
    s->not_full.notify_all();
  }
  for (auto& s : shards_) {
    if (s->thread.joinable()) s->thread.join();
  }
}

size_t ShardedWorkerPool::queued() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s->mu);
    n += s->queue.size();
  }
  return n;
}

}  // namespace rxflow::runtime
