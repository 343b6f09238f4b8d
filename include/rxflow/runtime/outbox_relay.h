// File: rxflow/runtime/outbox_relay.h
//
// The outbox relay: claims outbox rows in commit order, publishes them in batches (topic,
// key = prescription id, headers = the row's headers plus `message_id`), and marks them
// published. At-least-once: a crash between publish and mark publishes again (consumers
// deduplicate through the inbox). While the broker is down it backs off (exponential,
// jittered) and releases the claimed rows. Several relays may share one store (claims
// with leases; PostgreSQL: FOR UPDATE SKIP LOCKED).
#ifndef RXFLOW_RUNTIME_OUTBOX_RELAY_H_
#define RXFLOW_RUNTIME_OUTBOX_RELAY_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "rxflow/clock.h"
#include "rxflow/messaging/broker.h"
#include "rxflow/runtime/resilience.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::runtime {

struct OutboxRelayOptions {
  size_t batch = 512;                      // rows per claim and publish
  std::chrono::milliseconds lease{30000};  // claim lease
  std::chrono::milliseconds idle_poll{5};  // sleep when the outbox is empty
  BackoffOptions backoff{std::chrono::milliseconds(50), std::chrono::milliseconds(5000), 2.0};
};

class OutboxRelay {
 public:
  // `outbox` and `producer` must outlive the relay.
  OutboxRelay(store::Outbox& outbox, messaging::Producer& producer, OutboxRelayOptions options = {},
              Clock* clock = nullptr);
  ~OutboxRelay();  // Stop()

  // One claim → publish → mark round. Returns how many rows were published (0: nothing to
  // do); Unavailable when the broker refused the batch (the rows are released for retry).
  StatusOr<size_t> RunOnce();

  // A background thread calling RunOnce, idling and backing off as above.
  void Start();
  void Stop();

  int64_t published() const { return published_.load(); }
  int64_t publish_errors() const { return errors_.load(); }
  // Age in microseconds of the oldest row published by the last round (0 when idle).
  int64_t lag_micros() const { return lag_.load(); }

 private:
  void Loop();
  store::Outbox& outbox_;
  messaging::Producer& producer_;
  OutboxRelayOptions options_;
  Clock& clock_;
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::atomic<int64_t> published_{0}, errors_{0}, lag_{0};
};

}  // namespace rxflow::runtime

#endif  // RXFLOW_RUNTIME_OUTBOX_RELAY_H_
