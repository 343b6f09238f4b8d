// SPDX-License-Identifier: Apache-2.0
// File: rxflow/messaging/broker.h
//
// The messaging ports: a Broker hands out Producers and Consumers. Adapters: the
// in-process broker (below, in core) and Kafka (rxflow::kafka, librdkafka). Both pass one
// contract suite (tests/contract/broker_contract_test.cc).
//
// Guarantees every adapter gives:
//   * Messages with the same key go to the same partition and are delivered in publish
//     order within it (per-prescription order).
//   * Publish returns OK only when the broker has durably accepted every message of the
//     batch (Kafka: idempotent producer, acks=all). On an error some messages may have been
//     accepted: the caller republishes the batch (at-least-once; consumers deduplicate on
//     the `message_id` header through the inbox).
//   * A consumer group shares its topics' partitions among its members; each message is
//     delivered to one member. Offsets move only on Commit, which the consumer calls after
//     its inbox transaction; uncommitted messages are delivered again to whichever member
//     owns the partition next (after this one closes or dies).
//
// Status codes: Unavailable (broker down or full: retry with backoff), InvalidArgument
// (caller error), FailedPrecondition (a configuration that breaks the guarantees).
#ifndef RXFLOW_MESSAGING_BROKER_H_
#define RXFLOW_MESSAGING_BROKER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rxflow/status.h"

namespace rxflow::messaging {

// Topic names (../docs/operations.md). Key = prescription id everywhere.
namespace topics {
inline constexpr std::string_view kPrescriptionEvents = "prescription.events";
inline constexpr std::string_view kPrescriptionCommands = "prescription.commands";
inline constexpr std::string_view kRoutingRequests = "routing.requests";
inline constexpr std::string_view kRoutingResponses = "routing.responses";
inline constexpr std::string_view kAuditTrail = "audit.trail";
inline constexpr std::string_view kNcpdpOutbound = "ncpdp.outbound";
inline constexpr std::string_view kNcpdpInbound = "ncpdp.inbound";
inline constexpr std::string_view kDeadLetter = "dead.letter";
}  // namespace topics

// Header names every producer in RxFlow sets.
inline constexpr std::string_view kMessageIdHeader = "message_id";
inline constexpr std::string_view kTraceparentHeader = "traceparent";

struct Message {
  std::string topic;
  std::string key;
  std::string payload;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set on delivery.
  int32_t partition = -1;
  int64_t offset = -1;

  // The first header named `name`, or "" when absent.
  std::string_view Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

class Producer {
 public:
  virtual ~Producer() = default;
  // Publishes `batch` and waits until every message is durably accepted (see above).
  virtual Status Publish(std::span<const Message> batch) = 0;
  // The same, the messages given over (afterwards `batch` holds unspecified messages): a
  // producer that keeps them, as the in-process broker does, moves them instead of copying.
  // By default, Publish(batch).
  virtual Status PublishOwned(std::vector<Message>& batch) {
    return Publish(std::span<const Message>(batch));
  }
};

class Consumer {
 public:
  virtual ~Consumer() = default;
  // Up to `max` messages, waiting at most `timeout` for the first one. An empty result is
  // not an error. Within a partition, messages come in offset order.
  virtual StatusOr<std::vector<Message>> Poll(size_t max, std::chrono::milliseconds timeout) = 0;
  // Marks `message` and every earlier message of its partition done for the group.
  virtual Status Commit(const Message& message) = 0;
  // Leaves the group; its partitions go to the other members, from the committed offsets.
  virtual void Close() = 0;
};

class Broker {
 public:
  virtual ~Broker() = default;
  virtual StatusOr<std::unique_ptr<Producer>> NewProducer() = 0;
  // A member of consumer group `group` subscribed to `topics`.
  virtual StatusOr<std::unique_ptr<Consumer>> NewConsumer(
      const std::string& group, const std::vector<std::string>& topics) = 0;
  virtual std::string_view Name() const = 0;  // "in-process" | "kafka"
};

struct InProcessBrokerOptions {
  int partitions = 8;  // per topic
  // Bound per partition on messages not yet committed by every group that consumes the
  // topic (or, before any group subscribed, not yet trimmed). Publish waits for room up to
  // `publish_timeout`, then fails with Unavailable: backpressure on the relay.
  size_t capacity = 1 << 16;
  // The same bound in bytes (payloads, keys and headers) per partition.
  size_t capacity_bytes = size_t{256} << 20;
  // A topic no group has subscribed to (yet) keeps, per partition, at most this many bytes,
  // and nothing older than `unconsumed_retention`: enough for a consumer that starts just
  // after the relay, without holding prescriptions (PHI) for topics nobody reads.
  size_t unconsumed_retention_bytes = size_t{4} << 20;
  std::chrono::milliseconds unconsumed_retention{30000};
  std::chrono::milliseconds publish_timeout{2000};
};

// An in-process broker: bounded, ordered per key, consumer groups with committed offsets.
// Nothing survives the process (the outbox is the durable copy).
std::unique_ptr<Broker> NewInProcessBroker(InProcessBrokerOptions options = {});

}  // namespace rxflow::messaging

#endif  // RXFLOW_MESSAGING_BROKER_H_
