// SPDX-License-Identifier: Apache-2.0
// kafka-mock-cluster: librdkafka's mock Kafka cluster on loopback, with RxFlow's topics,
// for the end-to-end tests and demos of the scaled-out shape without a Kafka installation.
// Prints "bootstrap HOST:PORT,..." and runs until SIGINT/SIGTERM. Never for production
// (librdkafka marks its mock cluster experimental; nothing is persisted).
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "rxflow/kafka/kafka_broker.h"
#include "rxflow/messaging/broker.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kafka-mock-cluster: librdkafka's mock cluster with RxFlow's topics"};
  int brokers = 3, partitions = 8;
  app.add_option("--brokers", brokers, "mock brokers");
  app.add_option("--partitions", partitions, "partitions per topic");
  CLI11_PARSE(app, argc, argv);
  namespace t = rxflow::messaging::topics;
  std::vector<std::string> topics;
  for (std::string_view name :
       {t::kPrescriptionEvents, t::kPrescriptionCommands, t::kRoutingRequests, t::kRoutingResponses,
        t::kAuditTrail, t::kNcpdpOutbound, t::kNcpdpInbound, t::kDeadLetter}) {
    topics.emplace_back(name);
  }
  auto cluster = rxflow::kafka::MockCluster::Start(brokers, topics, partitions);
  if (!cluster.ok()) {
    std::cerr << "kafka-mock-cluster: " << cluster.status().message() << "\n";
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::cout << "bootstrap " << (*cluster)->bootstrap_servers() << std::endl;
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}
