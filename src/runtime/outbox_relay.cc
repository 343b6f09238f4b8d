// SPDX-License-Identifier: Apache-2.0
#include "rxflow/runtime/outbox_relay.h"

#include <algorithm>
#include <iterator>

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/runtime/messages.h"

namespace rxflow::runtime {

OutboxRelay::OutboxRelay(store::EventStore& log, store::Subscriptions& subscriptions,
                         messaging::Producer& producer, OutboxRelayOptions options, Clock* clock)
    : log_(log),
      subscriptions_(subscriptions),
      producer_(producer),
      options_(std::move(options)),
      clock_(clock ? *clock : SystemClock()) {
  if (options_.owner.empty()) options_.owner = "relay-" + internal::RandomHex128();
}

OutboxRelay::OutboxRelay(store::Store& store, messaging::Producer& producer,
                         OutboxRelayOptions options, Clock* clock)
    : OutboxRelay(store, store, producer, std::move(options), clock) {}

OutboxRelay::~OutboxRelay() { Stop(); }

StatusOr<size_t> OutboxRelay::RunOnce() {
  const std::string& name = options_.subscription;
  const int64_t ttl = options_.lease.count() * 1000;
  const int64_t now = clock_.NowMicros();
  if (!active_.load()) {
    RXFLOW_ASSIGN_OR_RETURN(bool got, subscriptions_.AcquireLease(name, options_.owner, ttl));
    if (!got) return size_t{0};  // another relay is active: stand by
    RXFLOW_ASSIGN_OR_RETURN(checkpoint_, subscriptions_.SubscriptionCheckpoint(name));
    lease_renewed_at_ = now;
    active_.store(true);
  }
  if (now - lease_renewed_at_ >= ttl / 2) {
    // Keep the lease while idle or while the broker refuses batches (no checkpoint renews it
    // then), so that a standby does not take over a relay that is alive.
    RXFLOW_ASSIGN_OR_RETURN(bool kept, subscriptions_.AcquireLease(name, options_.owner, ttl));
    if (!kept) {
      active_.store(false);
      return absl::FailedPreconditionError("outbox relay: lost the lease on " + name);
    }
    lease_renewed_at_ = now;
  }
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> events,
                          log_.ReadAll(checkpoint_, options_.batch));
  if (events.empty()) {
    lag_.store(0);
    return size_t{0};
  }
  std::vector<messaging::Message> batch;
  batch.reserve(events.size() * 3);
  int64_t oldest = events.front().occurred_at;
  for (const store::EventRecord& e : events) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<messaging::Message> messages,
                            DeriveMessages(e, options_.upcasters));
    std::move(messages.begin(), messages.end(), std::back_inserter(batch));
    oldest = std::min(oldest, e.occurred_at);
  }
  if (Status s = producer_.PublishOwned(batch); !s.ok()) {
    errors_.fetch_add(1);
    return s;  // nothing committed: the same events are read again
  }
  const int64_t last = events.back().global_position;
  if (Status s = subscriptions_.CommitCheckpoint(name, options_.owner, last, ttl); !s.ok()) {
    // Lost to another relay (it publishes from its own checkpoint; what this one published
    // is deduplicated by the consumers), or the store is down: read the lease again.
    active_.store(false);
    return s;
  }
  checkpoint_ = last;
  lease_renewed_at_ = now;
  published_.fetch_add(static_cast<int64_t>(batch.size()));
  lag_.store(std::max<int64_t>(0, clock_.NowMicros() - oldest));
  return events.size();
}

void OutboxRelay::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { Loop(); });
}

void OutboxRelay::Stop() {
  running_.store(false);
  if (thread_.joinable()) thread_.join();
  if (active_.exchange(false)) {
    (void)subscriptions_.ReleaseLease(options_.subscription, options_.owner);
  }
}

void OutboxRelay::Loop() {
  int failures = 0;
  while (running_.load()) {
    auto n = RunOnce();
    if (!n.ok()) {
      auto delay = BackoffDelay(options_.backoff, ++failures);
      auto until = std::chrono::steady_clock::now() + delay;
      while (running_.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(
            std::min<std::chrono::microseconds>(delay, std::chrono::milliseconds(20)));
      }
      continue;
    }
    failures = 0;
    if (*n > 0) continue;
    // Idle; a standby asks for the lease a few times per lease period, not per poll.
    auto idle = active_.load() ? options_.idle_poll
                               : std::clamp(options_.lease / 4, options_.idle_poll,
                                            std::chrono::milliseconds(1000));
    auto until = std::chrono::steady_clock::now() + idle;
    while (running_.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(
          std::min<std::chrono::milliseconds>(idle, std::chrono::milliseconds(20)));
    }
  }
}

StatusOr<int64_t> RelayBacklog(store::Subscriptions& subscriptions,
                               const std::string& subscription) {
  RXFLOW_ASSIGN_OR_RETURN(int64_t head, subscriptions.HeadPosition());
  RXFLOW_ASSIGN_OR_RETURN(int64_t checkpoint, subscriptions.SubscriptionCheckpoint(subscription));
  return std::max<int64_t>(0, head - checkpoint);
}

}  // namespace rxflow::runtime
