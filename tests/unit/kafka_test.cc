// SPDX-License-Identifier: Apache-2.0
// The Kafka adapter beyond the broker contract: the configuration checks, failures when the
// cluster is unreachable or down, binary header values. Uses librdkafka's mock cluster.
#ifdef RXFLOW_TEST_HAVE_KAFKA

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include "rxflow/kafka/kafka_broker.h"
#include "rxflow/messaging/broker.h"

#include "testing/broker_adapters.h"
#include "testing/status.h"
#include <unistd.h>

using namespace std::chrono_literals;
using rxflow::kafka::KafkaOptions;
using rxflow::kafka::MockCluster;
using rxflow::kafka::NewKafkaBroker;
using rxflow::messaging::Consumer;
using rxflow::messaging::Message;

using rxflow::testing::Drain;

namespace {

Message Msg(const std::string& topic, const std::string& key, const std::string& payload) {
  return rxflow::testing::TestMessage(topic, key, payload);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_SUITE("Kafka adapter") {
  TEST_CASE("a configuration that breaks the guarantees is FailedPrecondition") {
    KafkaOptions o;
    o.brokers = "127.0.0.1:1";
    o.config = {{"enable.idempotence", "false"}};
    CHECK(NewKafkaBroker(o).status().code() == absl::StatusCode::kFailedPrecondition);
    o.config = {{"acks", "1"}};
    CHECK(NewKafkaBroker(o).status().code() == absl::StatusCode::kFailedPrecondition);
    o.config = {{"request.required.acks", "0"}};  // acks under its other name
    CHECK(NewKafkaBroker(o).status().code() == absl::StatusCode::kFailedPrecondition);
    o.config = {{"enable.auto.commit", "true"}};
    CHECK(NewKafkaBroker(o).status().code() == absl::StatusCode::kFailedPrecondition);
    // The safe values and tuning properties are accepted.
    o.config = {{"acks", "all"}, {"enable.idempotence", "true"}, {"linger.ms", "20"}};
    CHECK(NewKafkaBroker(o).ok());
    o.config = {{"acks", "-1"}, {"compression.type", "lz4"}};
    CHECK(NewKafkaBroker(o).ok());
    // Caller errors.
    o.config = {{"no.such.property", "1"}};
    CHECK(NewKafkaBroker(o).status().code() == absl::StatusCode::kInvalidArgument);
    o.config = {};
    o.brokers = "";
    CHECK(NewKafkaBroker(o).status().code() == absl::StatusCode::kInvalidArgument);
  }

  TEST_CASE("publishing to an unreachable cluster fails Unavailable after publish_timeout") {
    KafkaOptions o;
    o.brokers = "127.0.0.1:1";
    o.publish_timeout = 1500ms;
    auto broker = NewKafkaBroker(o);
    RXFLOW_REQUIRE_OK(broker);
    auto producer = (*broker)->NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    Message m = Msg("prescription.events", "rx-1", "payload");
    auto start = std::chrono::steady_clock::now();
    rxflow::Status s = (*producer)->Publish({&m, 1});
    double took = SecondsSince(start);
    CHECK(s.code() == absl::StatusCode::kUnavailable);
    CHECK(s.message().find("prescription.events") != std::string::npos);
    // It waited for publish_timeout (1.5 s), and then gave up: librdkafka's own default
    // (message.timeout.ms, 300 s) would be far past the generous upper bound.
    CHECK(took >= 1.0);
    CHECK(took < 60.0);
    MESSAGE(s.ToString());
    // A message without a topic is the caller's error.
    Message no_topic = Msg("", "k", "p");
    CHECK((*producer)->Publish({&no_topic, 1}).code() == absl::StatusCode::kInvalidArgument);
    producer->reset();
    CHECK(SecondsSince(start) < 60.0);  // closing the producer does not hang
  }

  TEST_CASE("a failed delivery report is Unavailable and never quotes the payload") {
    KafkaOptions o;
    o.brokers = "127.0.0.1:1";
    // librdkafka gives up first (it scans for timed-out messages about once a second, so
    // the margin is wide for a sanitized build on a busy machine).
    o.publish_timeout = 10000ms;
    o.config = {{"message.timeout.ms", "500"}};
    auto broker = NewKafkaBroker(o);
    RXFLOW_REQUIRE_OK(broker);
    auto producer = (*broker)->NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    Message m = Msg("prescription.events", "rx-1", "PATIENT-DOE-JOHN-1970-01-01");
    rxflow::Status s = (*producer)->Publish({&m, 1});
    CHECK(s.code() == absl::StatusCode::kUnavailable);
    // librdkafka's delivery report, not our publish_timeout, ended the wait: its error code is
    // in the message (no clock involved, so no flake on a loaded machine).
    CHECK(s.message().find("_MSG_TIMED_OUT") != std::string::npos);
    CHECK(s.message().find("prescription.events") != std::string::npos);
    CHECK(s.message().find("PATIENT") == std::string::npos);
    MESSAGE(s.ToString());
  }

  TEST_CASE("header values are binary-safe and empty values survive") {
    rxflow::testing::KafkaBrokerAdapter a;
    std::string topic = a.Name("headers");
    auto consumer = a.broker().NewConsumer(a.Name("g"), {topic});
    RXFLOW_REQUIRE_OK(consumer);
    auto producer = a.broker().NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    std::string binary("\0\x01\xff\xfe zero\0end", 14);
    std::string all_bytes;
    for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
    Message m = Msg(topic, std::string("key\0with-nul", 12), all_bytes);
    m.headers = {{"message_id", "m-1"}, {"bin", binary}, {"empty", ""}, {"bin", all_bytes}};
    RXFLOW_REQUIRE_OK((*producer)->Publish({&m, 1}));
    auto got = Drain(**consumer, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].key == m.key);
    CHECK(got[0].payload == all_bytes);
    REQUIRE(got[0].headers.size() == 4);
    CHECK(got[0].headers == m.headers);  // names, values and order
    CHECK(got[0].Header("bin") == binary);
  }

  TEST_CASE("while every broker is down Publish fails Unavailable, afterwards nothing is lost") {
    auto cluster = MockCluster::Start(3, {"outage"}, 4);
    RXFLOW_REQUIRE_OK(cluster);
    KafkaOptions o;
    o.brokers = (*cluster)->bootstrap_servers();
    o.publish_timeout = 2000ms;
    o.config = {{"reconnect.backoff.max.ms", "500"},
                {"session.timeout.ms", "3000"},
                {"heartbeat.interval.ms", "500"}};
    auto broker = NewKafkaBroker(o);
    RXFLOW_REQUIRE_OK(broker);
    auto producer = (*broker)->NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    Message first = Msg("outage", "rx-0", "before");
    RXFLOW_REQUIRE_OK((*producer)->Publish({&first, 1}));

    RXFLOW_REQUIRE_OK((*cluster)->SetBrokerDown(-1, true));
    std::vector<Message> batch;
    for (int i = 0; i < 20; ++i)
      batch.push_back(Msg("outage", "rx-" + std::to_string(i % 5), std::to_string(i)));
    auto start = std::chrono::steady_clock::now();
    rxflow::Status down = (*producer)->Publish(batch);
    double took = SecondsSince(start);
    CHECK(down.code() == absl::StatusCode::kUnavailable);
    CHECK(down.message().find("outage") != std::string::npos);
    CHECK(took >= 1.5);  // waited for publish_timeout (2 s) ...
    CHECK(took < 60.0);  // ... and gave up (librdkafka alone would wait 300 s)
    MESSAGE(down.ToString());

    // The caller republishes with backoff until the cluster is back (at-least-once).
    RXFLOW_REQUIRE_OK((*cluster)->SetBrokerDown(-1, false));
    rxflow::Status up;
    auto retry_end = std::chrono::steady_clock::now() + 30s;
    int attempts = 0;
    do {
      ++attempts;
      up = (*producer)->Publish(batch);
    } while (!up.ok() && std::chrono::steady_clock::now() < retry_end);
    CHECK_MESSAGE(up.ok(), up.ToString());
    MESSAGE("published after the outage in ", attempts, " attempt(s), ", SecondsSince(start),
            " s after the outage began");

    // Every message arrived at least once (duplicates are the inbox's business).
    auto consumer = (*broker)->NewConsumer("outage-readers", {"outage"});
    RXFLOW_REQUIRE_OK(consumer);
    std::set<std::string> ids;
    auto end = std::chrono::steady_clock::now() + 30s;
    while (ids.size() < batch.size() + 1 && std::chrono::steady_clock::now() < end) {
      auto got = (*consumer)->Poll(64, 200ms);
      RXFLOW_REQUIRE_OK(got);
      for (const Message& m : *got) {
        ids.insert(std::string(m.Header("message_id")));
        CHECK((*consumer)->Commit(m).ok());
      }
    }
    CHECK(ids.size() == batch.size() + 1);
    (*consumer)->Close();
  }

  TEST_CASE("several threads publish on one producer, each key keeps its order") {
    rxflow::testing::KafkaBrokerAdapter a;
    std::string topic = a.Name("threads");
    auto consumer = a.broker().NewConsumer(a.Name("g"), {topic});
    RXFLOW_REQUIRE_OK(consumer);
    auto producer = a.broker().NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    constexpr int kThreads = 4;
    constexpr int kBatches = 10;
    constexpr int kPerBatch = 10;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int b = 0; b < kBatches; ++b) {
          std::vector<Message> batch;
          for (int i = 0; i < kPerBatch; ++i) {
            // Key per thread: its sequence numbers must arrive in order.
            batch.push_back(
                Msg(topic, "rx-" + std::to_string(t), std::to_string(b * kPerBatch + i)));
          }
          if (!(*producer)->Publish(batch).ok()) ++failures;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    CHECK(failures.load() == 0);
    auto got = Drain(**consumer, kThreads * kBatches * kPerBatch);
    CHECK(got.size() == kThreads * kBatches * kPerBatch);
    std::map<std::string, int> last;
    for (const Message& m : got) {
      int n = std::stoi(m.payload);
      auto it = last.find(m.key);
      if (it != last.end()) CHECK(n == it->second + 1);
      last[m.key] = n;
    }
    CHECK(last.size() == kThreads);
  }

  TEST_CASE("CreateTopics checks its arguments") {
    // (Its success path needs a real cluster, REDPANDA_BROKERS: the mock cluster does not
    // implement the CreateTopics request, which then times out after 30 s.)
    CHECK(rxflow::kafka::CreateTopics("127.0.0.1:1", {"t"}, 0).code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(rxflow::kafka::CreateTopics("", {"t"}, 1).code() == absl::StatusCode::kInvalidArgument);
    CHECK(rxflow::kafka::CreateTopics("127.0.0.1:1", {}, 1).ok());
  }

  TEST_CASE("a closed consumer refuses Poll and Commit, Close is idempotent") {
    rxflow::testing::KafkaBrokerAdapter a;
    std::string topic = a.Name("closed");
    auto consumer = a.broker().NewConsumer(a.Name("g"), {topic});
    RXFLOW_REQUIRE_OK(consumer);
    (*consumer)->Close();
    (*consumer)->Close();
    CHECK((*consumer)->Poll(1, 10ms).status().code() == absl::StatusCode::kFailedPrecondition);
    Message m = Msg(topic, "k", "p");
    m.partition = 0;
    m.offset = 0;
    CHECK((*consumer)->Commit(m).code() == absl::StatusCode::kFailedPrecondition);
    CHECK(a.broker().NewConsumer("", {topic}).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(a.broker().NewConsumer("g", {}).status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(a.broker().Name() == "kafka");
  }
}

#endif  // RXFLOW_TEST_HAVE_KAFKA
