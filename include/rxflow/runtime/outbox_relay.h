// SPDX-License-Identifier: Apache-2.0
// File: rxflow/runtime/outbox_relay.h
//
// The outbox relay. The event log is the outbox: the relay reads the log from its
// subscription's checkpoint, in commit order, derives each event's messages
// (runtime/messages.h), publishes them in batches, then commits the checkpoint.
// At-least-once: a crash between publish and checkpoint publishes the batch again, with the
// same message ids (consumers deduplicate through the inbox). While the broker is down it
// backs off (exponential, jittered) and keeps its place.
//
// One relay per subscription is active across processes: it holds the subscription's lease
// and renews it with each checkpoint (or every half lease when idle); the others stand by
// and take over once the lease runs out (a killed relay: after `lease`; a stopped one:
// at once, Stop releases it). A relay that finds its lease taken stops publishing.
#ifndef RXFLOW_RUNTIME_OUTBOX_RELAY_H_
#define RXFLOW_RUNTIME_OUTBOX_RELAY_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/messaging/broker.h"
#include "rxflow/runtime/resilience.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::runtime {

struct OutboxRelayOptions {
  std::string subscription = store::kRelaySubscription;
  std::string owner;                       // this relay's lease owner id; empty: a random one
  size_t batch = 512;                      // events read, derived and published per round
  std::chrono::milliseconds lease{5000};   // a standby takes over this long after a crash
  std::chrono::milliseconds idle_poll{5};  // sleep when the log has nothing new
  BackoffOptions backoff{std::chrono::milliseconds(50), std::chrono::milliseconds(5000), 2.0};
  // How events of an older schema version are upcast when deriving their messages (use the
  // service's: PrescriptionService::upcasters()). Default: the built-in upcasters.
  domain::UpcasterRegistry upcasters = domain::UpcasterRegistry::Builtin();
};

class OutboxRelay {
 public:
  // `log`, `subscriptions` and `producer` must outlive the relay.
  OutboxRelay(store::EventStore& log, store::Subscriptions& subscriptions,
              messaging::Producer& producer, OutboxRelayOptions options = {},
              Clock* clock = nullptr);
  // The same with one store for the log and the subscriptions.
  OutboxRelay(store::Store& store, messaging::Producer& producer, OutboxRelayOptions options = {},
              Clock* clock = nullptr);
  ~OutboxRelay();  // Stop()

  // One round: take or renew the lease, read → derive → publish → commit the checkpoint.
  // Returns how many events were relayed (0: nothing new, or standing by while another
  // relay holds the lease). Unavailable when the broker refused the batch (nothing
  // committed: the same events come again); FailedPrecondition when the lease was lost
  // to another relay; DataLoss when an event cannot be derived (the relay stays there).
  StatusOr<size_t> RunOnce();

  // A background thread calling RunOnce, idling and backing off as above.
  void Start();
  // Stops the thread and releases the lease.
  void Stop();

  bool active() const { return active_.load(); }           // holds the lease
  int64_t published() const { return published_.load(); }  // messages
  int64_t publish_errors() const { return errors_.load(); }
  // Microseconds from the oldest event of the last relayed batch to its publication (0 when
  // idle).
  int64_t lag_micros() const { return lag_.load(); }

 private:
  void Loop();
  store::EventStore& log_;
  store::Subscriptions& subscriptions_;
  messaging::Producer& producer_;
  OutboxRelayOptions options_;
  Clock& clock_;
  int64_t checkpoint_ = 0;  // valid while active_
  int64_t lease_renewed_at_ = 0;
  std::atomic<bool> running_{false}, active_{false};
  std::thread thread_;
  std::atomic<int64_t> published_{0}, errors_{0}, lag_{0};
};

// Events of the log not yet relayed by `subscription`: head − checkpoint.
StatusOr<int64_t> RelayBacklog(store::Subscriptions& subscriptions,
                               const std::string& subscription = store::kRelaySubscription);

}  // namespace rxflow::runtime

#endif  // RXFLOW_RUNTIME_OUTBOX_RELAY_H_
