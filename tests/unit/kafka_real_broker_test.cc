// SPDX-License-Identifier: Apache-2.0
// The Kafka adapter against a real broker (REDPANDA_BROKERS): what librdkafka's mock
// cluster cannot do. Built and registered with ctest only where a broker is configured
// (tests/CMakeLists.txt).
#ifdef RXFLOW_TEST_HAVE_KAFKA

#include <cstdlib>
#include <string>

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include "rxflow/kafka/kafka_broker.h"
#include "rxflow/messaging/broker.h"

#include "testing/broker_adapters.h"
#include "testing/status.h"
#include <unistd.h>

using rxflow::kafka::KafkaOptions;
using rxflow::kafka::NewKafkaBroker;
using rxflow::messaging::Message;
using rxflow::testing::Drain;

namespace {

// The partition count of `topic` as the cluster's metadata reports it (-1: no such topic).
int PartitionCount(const std::string& brokers, const std::string& topic) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  REQUIRE(rk != nullptr);
  int count = -1;
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, /*all_topics=*/1, nullptr, &md, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        count = md->topics[i].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_destroy(rk);
  return count;
}

}  // namespace

// CreateTopics goes to the cluster's controller. librdkafka 2.0's mock cluster answers Metadata
// with ControllerId 0 while its brokers are numbered from 1, so an admin request there waits for
// a controller that does not exist: this case needs a real broker (REDPANDA_BROKERS) and is
// registered with ctest only where one is configured (tests/CMakeLists.txt).
TEST_SUITE("Kafka real broker") {
  TEST_CASE("CreateTopics creates each topic with its partitions and leaves existing ones be") {
    const char* env = std::getenv("REDPANDA_BROKERS");
    REQUIRE_MESSAGE(env != nullptr, "set REDPANDA_BROKERS to a Kafka-compatible broker");
    std::string brokers = env;
    std::string suffix = std::to_string(::getpid());
    std::string routing = "routing.requests." + suffix, events = "prescription.events." + suffix;
    CHECK(PartitionCount(brokers, routing) == -1);
    rxflow::Status created = rxflow::kafka::CreateTopics(brokers, {routing, events}, 6);
    REQUIRE_MESSAGE(created.ok(), created.ToString());
    CHECK(PartitionCount(brokers, routing) == 6);
    CHECK(PartitionCount(brokers, events) == 6);
    // Again, asking for another count: the topics exist and are left as they are.
    rxflow::Status again = rxflow::kafka::CreateTopics(brokers, {routing}, 2);
    CHECK_MESSAGE(again.ok(), again.ToString());
    CHECK(PartitionCount(brokers, routing) == 6);
    // A message goes through a created topic.
    KafkaOptions o;
    o.brokers = brokers;
    auto broker = NewKafkaBroker(o);
    RXFLOW_REQUIRE_OK(broker);
    auto consumer = (*broker)->NewConsumer("create-topics", {routing});
    RXFLOW_REQUIRE_OK(consumer);
    auto producer = (*broker)->NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    Message m = rxflow::testing::TestMessage(routing, "rx-1", "hello");
    RXFLOW_REQUIRE_OK((*producer)->Publish({&m, 1}));
    auto got = Drain(**consumer, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "hello");
  }
}

#endif  // RXFLOW_TEST_HAVE_KAFKA
