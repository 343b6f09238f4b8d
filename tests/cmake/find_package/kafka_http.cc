// SPDX-License-Identifier: Apache-2.0
// A user's program on the installed rxflow::kafka and rxflow::http components: a message
// through librdkafka's mock cluster, and a SCRIPT exchange with the pharmacy simulator.
#include <chrono>
#include <iostream>

#include "rxflow/http/servers.h"
#include "rxflow/kafka/kafka_broker.h"

int main() {
  auto cluster = rxflow::kafka::MockCluster::Start(1, {"t"}, 1);
  if (!cluster.ok()) return 1;
  rxflow::kafka::KafkaOptions options;
  options.brokers = (*cluster)->bootstrap_servers();
  options.config = {{"session.timeout.ms", "3000"}, {"heartbeat.interval.ms", "500"}};
  auto broker = rxflow::kafka::NewKafkaBroker(options);
  if (!broker.ok()) return 2;
  auto consumer = (*broker)->NewConsumer("g", {"t"});
  auto producer = (*broker)->NewProducer();
  if (!consumer.ok() || !producer.ok()) return 3;
  rxflow::messaging::Message m;
  m.topic = "t";
  m.key = "k";
  m.payload = "hello";
  if (!(*producer)->Publish({&m, 1}).ok()) return 4;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool got = false;
  while (!got && std::chrono::steady_clock::now() < end) {
    auto batch = (*consumer)->Poll(1, std::chrono::milliseconds(200));
    got = batch.ok() && !batch->empty() && batch->front().payload == "hello";
  }
  if (!got) return 5;
  rxflow::http::PharmacySimulator simulator({});
  if (!simulator.Start().ok()) return 6;
  auto transport = rxflow::http::NewHttpPharmacyTransport();
  auto reply = transport->Post(simulator.url(), "<not-script/>", "");
  simulator.Stop();
  if (!reply.ok() || reply->find("<Error>") == std::string::npos) return 7;
  std::cout << "kafka and http ok\n";
  return 0;
}
