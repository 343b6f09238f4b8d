// SPDX-License-Identifier: Apache-2.0
// The Kafka adapter for the broker contract suite: librdkafka's mock cluster (one per test
// process, 3 brokers, started on first use), or the cluster at REDPANDA_BROKERS when set.
// Included by testing/broker_adapters.h (after UniqueName) when RXFLOW_TEST_HAVE_KAFKA.
#ifndef RXFLOW_TESTS_TESTING_KAFKA_ADAPTERS_H_
#define RXFLOW_TESTS_TESTING_KAFKA_ADAPTERS_H_

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include <doctest/doctest.h>

#include "rxflow/kafka/kafka_broker.h"
#include "rxflow/messaging/broker.h"

#include <unistd.h>

namespace rxflow::testing {

// REDPANDA_BROKERS, or "" for the mock cluster.
inline std::string KafkaTestBrokers() {
  const char* env = std::getenv("REDPANDA_BROKERS");
  return env != nullptr ? env : "";
}

// The process-wide mock cluster (nullptr with REDPANDA_BROKERS).
inline kafka::MockCluster* KafkaTestCluster() {
  static std::unique_ptr<kafka::MockCluster> cluster = [] {
    std::unique_ptr<kafka::MockCluster> c;
    if (!KafkaTestBrokers().empty()) return c;
    auto started = kafka::MockCluster::Start(3);
    REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    return *std::move(started);
  }();
  return cluster.get();
}

// Options for a broker on the test cluster: fast group joins. The mock cluster delays a
// group's first election by 3 s and later ones by session.timeout.ms - 1 s; a real cluster
// refuses session timeouts under group.min.session.timeout.ms (6 s by default).
inline kafka::KafkaOptions KafkaTestOptions() {
  kafka::KafkaOptions o;
  kafka::MockCluster* cluster = KafkaTestCluster();
  o.brokers = cluster != nullptr ? cluster->bootstrap_servers() : KafkaTestBrokers();
  o.client_id = "rxflow-tests";
  o.publish_timeout = std::chrono::seconds(15);
  o.config = {{"session.timeout.ms", cluster != nullptr ? "3000" : "6000"},
              {"heartbeat.interval.ms", "500"},
              {"reconnect.backoff.max.ms", "1000"}};
  // RXFLOW_KAFKA_DEBUG=cgrp,fetch (librdkafka's `debug` contexts) logs on stderr.
  if (const char* debug = std::getenv("RXFLOW_KAFKA_DEBUG")) o.config.emplace_back("debug", debug);
  return o;
}

// A topic (created now, 8 partitions) or group name unique to this process and call.
inline std::string KafkaTestName(const std::string& base) {
  kafka::MockCluster* cluster = KafkaTestCluster();
  std::string name;
  if (cluster != nullptr) {
    name = UniqueName(base);
    REQUIRE(cluster->CreateTopic(name, 8).ok());
  } else {
    // A shared cluster keeps topics across runs: make the names unique per run.
    static const std::string run =
        "rxflow-test-" + std::to_string(::getpid()) + "-" +
        std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000) + "-";
    name = UniqueName(run + base);
    Status created = kafka::CreateTopics(KafkaTestBrokers(), {name}, 8);
    REQUIRE_MESSAGE(created.ok(), created.ToString());
  }
  return name;
}

struct KafkaBrokerAdapter {
  std::unique_ptr<messaging::Broker> b = [] {
    auto broker = kafka::NewKafkaBroker(KafkaTestOptions());
    REQUIRE_MESSAGE(broker.ok(), broker.status().ToString());
    return *std::move(broker);
  }();
  std::map<std::string, std::string> names;  // base -> name, stable within the case

  messaging::Broker& broker() { return *b; }
  // The same base gives the same name within a case (a.Name("g1") twice is one group) and
  // a fresh one in the next case. Every name is also created as a topic: harmless for group
  // names, and a topic is then ready before anyone produces to it or subscribes.
  std::string Name(const std::string& base) {
    auto it = names.find(base);
    if (it == names.end()) it = names.emplace(base, KafkaTestName(base)).first;
    return it->second;
  }
};

}  // namespace rxflow::testing

#endif  // RXFLOW_TESTS_TESTING_KAFKA_ADAPTERS_H_
