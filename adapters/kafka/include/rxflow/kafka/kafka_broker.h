// SPDX-License-Identifier: Apache-2.0
// File: rxflow/kafka/kafka_broker.h
//
// The Kafka adapter of the messaging ports (rxflow/messaging/broker.h), on librdkafka. It
// works with Apache Kafka, Redpanda and librdkafka's mock cluster, and passes the broker
// contract suite (tests/contract/broker_contract_test.cc).
//
// Producer: idempotent, acks=all, linger.ms=5. Publish returns OK once every message of
// the batch has been acknowledged by the cluster; a delivery error or `publish_timeout`
// fails the whole call with Unavailable (some messages may have been written: the caller
// republishes, consumers deduplicate on `message_id`). The default partitioner hashes the
// key, so a key always maps to one partition and keeps its publish order.
//
// Consumer: a member of a consumer group, auto-commit off, auto.offset.reset=earliest,
// range assignment. Commit is synchronous; Close leaves the group.
//
// Extra librdkafka properties (TLS, SASL, tuning) go in `KafkaOptions::config`; they apply
// to producers and consumers alike (a property of the other kind is ignored). A property
// that breaks the guarantees (enable.idempotence=false, acks other than all,
// enable.auto.commit=true) makes NewKafkaBroker fail with FailedPrecondition.
//
// librdkafka logs warnings and errors on stderr (everything when `config` sets librdkafka's
// `debug`); payloads are never logged nor quoted in a Status.
//
// Example:
//   rxflow::kafka::KafkaOptions options;
//   options.brokers = "kafka-1:9092,kafka-2:9092";
//   options.config = {{"security.protocol", "ssl"}};
//   auto broker = rxflow::kafka::NewKafkaBroker(options);
#ifndef RXFLOW_KAFKA_KAFKA_BROKER_H_
#define RXFLOW_KAFKA_KAFKA_BROKER_H_

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rxflow/messaging/broker.h"
#include "rxflow/status.h"

namespace rxflow::kafka {

struct KafkaOptions {
  // bootstrap.servers: "host:port[,host:port...]". Required.
  std::string brokers;
  // client.id, shown in the brokers' logs and metrics.
  std::string client_id = "rxflow";
  // Extra librdkafka properties, applied in order after the adapter's defaults.
  std::vector<std::pair<std::string, std::string>> config;
  // How long Publish waits for the cluster to acknowledge a batch (also librdkafka's
  // message.timeout.ms unless `config` sets it; a larger message.timeout.ms lets messages
  // of a timed-out Publish still be written afterwards, which the republish duplicates).
  std::chrono::milliseconds publish_timeout{30000};
};

// A broker over the Kafka cluster at `options.brokers`. Connects lazily (the first
// producer or consumer). InvalidArgument for a missing `brokers` or an unknown or invalid
// property; FailedPrecondition for a configuration that breaks the guarantees.
StatusOr<std::unique_ptr<messaging::Broker>> NewKafkaBroker(KafkaOptions options);

// Creates `topics` with `partitions` partitions each and the cluster's default replication
// factor, through the admin API; topics that exist already are left as they are.
// Unavailable when the cluster cannot be reached or refuses.
Status CreateTopics(const std::string& brokers, const std::vector<std::string>& topics,
                    int partitions);
// The same with the client settings (TLS, SASL) of `options`.
Status CreateTopics(const KafkaOptions& options, const std::vector<std::string>& topics,
                    int partitions);

// An in-process Kafka cluster (librdkafka's mock cluster) for tests and demos: real
// sockets on 127.0.0.1, so other processes can connect to bootstrap_servers() too. Nothing
// is persisted; the cluster stops when the object is destroyed. librdkafka marks the mock
// cluster as experimental: never use it in production.
class MockCluster {
 public:
  // Starts `brokers` brokers (ids 1..brokers) and creates `topics`.
  static StatusOr<std::unique_ptr<MockCluster>> Start(int brokers = 3,
                                                      const std::vector<std::string>& topics = {},
                                                      int partitions = 8);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // "127.0.0.1:port,..." for KafkaOptions::brokers.
  std::string bootstrap_servers() const;
  // Creates `topic` (replication factor min(3, brokers)); OK when it exists already.
  Status CreateTopic(const std::string& topic, int partitions);
  // Takes broker `broker_id` (1..brokers, or -1 for all) down (connections closed, new
  // ones refused) or back up. Partition leadership does not move.
  Status SetBrokerDown(int broker_id, bool down);

 private:
  struct Impl;
  explicit MockCluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rxflow::kafka

#endif  // RXFLOW_KAFKA_KAFKA_BROKER_H_
