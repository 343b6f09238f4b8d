// SPDX-License-Identifier: Apache-2.0
// The broker contract: every messaging adapter passes these cases. Adapters are listed in
// RXFLOW_BROKERS; each provides Make() (a broker) and a name prefix so that adapters sharing
// one cluster across cases use fresh topics and groups per case.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "rxflow/messaging/broker.h"

#include "testing/broker_adapters.h"
#include "testing/concurrency.h"
#include "testing/status.h"

using namespace std::chrono_literals;
using rxflow::messaging::Broker;
using rxflow::messaging::Consumer;
using rxflow::messaging::Message;

namespace {

Message Msg(const std::string& topic, const std::string& key, const std::string& payload) {
  return rxflow::testing::TestMessage(topic, key, payload);
}

using rxflow::testing::Drain;

// A consumer (group "g") of `topic` and a producer, on the case's broker.
struct Wired {
  std::unique_ptr<Consumer> consumer;
  std::unique_ptr<rxflow::messaging::Producer> producer;
};

template <typename A>
Wired Wire(A& a, const std::string& topic) {
  auto consumer = a.broker().NewConsumer(a.Name("g"), {topic});
  RXFLOW_REQUIRE_OK(consumer);
  auto producer = a.broker().NewProducer();
  RXFLOW_REQUIRE_OK(producer);
  return {std::move(*consumer), std::move(*producer)};
}

// A delivered TestMessage: its topic, its headers, and where it was delivered from.
void CheckDelivered(const Message& m, const std::string& topic) {
  CHECK(m.topic == topic);
  CHECK(m.Header("message_id") == m.key + ":" + m.payload);
  CHECK(m.Header("traceparent").size() == 55);
  CHECK(m.partition >= 0);
  CHECK(m.offset >= 0);
}

}  // namespace

TEST_SUITE("Broker contract") {
  TEST_CASE_TEMPLATE("messages of a key arrive in publish order with their headers", A,
                     RXFLOW_BROKERS) {
    A a;
    std::string topic = a.Name("orders");
    auto [consumer, producer] = Wire(a, topic);
    std::vector<Message> batch;
    for (int i = 0; i < 200; ++i) {
      batch.push_back(Msg(topic, "rx-" + std::to_string(i % 7), std::to_string(i)));
    }
    RXFLOW_REQUIRE_OK(producer->Publish(batch));
    auto got = Drain(*consumer, batch.size());
    REQUIRE(got.size() == batch.size());
    std::map<std::string, int> last;
    for (const Message& m : got) {
      int n = std::stoi(m.payload);
      auto it = last.find(m.key);
      if (it != last.end()) CHECK(n > it->second);
      last[m.key] = n;
      CheckDelivered(m, topic);
    }
    CHECK(last.size() == 7);
  }

  TEST_CASE_TEMPLATE("a batch given over (PublishOwned) arrives as a copied one does", A,
                     RXFLOW_BROKERS) {
    A a;
    std::string topic = a.Name("owned");
    auto [consumer, producer] = Wire(a, topic);
    std::vector<Message> copied, owned;
    for (int i = 0; i < 60; ++i) {
      copied.push_back(Msg(topic, "rx-" + std::to_string(i % 5), "c" + std::to_string(i)));
      owned.push_back(Msg(topic, "rx-" + std::to_string(i % 5), "o" + std::to_string(i)));
    }
    RXFLOW_REQUIRE_OK(producer->Publish(copied));
    RXFLOW_REQUIRE_OK(producer->PublishOwned(owned));
    auto got = Drain(*consumer, 120);
    REQUIRE(got.size() == 120);
    std::map<std::string, std::vector<std::string>> by_key;
    for (const Message& m : got) {
      CheckDelivered(m, topic);
      by_key[m.key].push_back(m.payload);
    }
    REQUIRE(by_key.size() == 5);
    for (int k = 0; k < 5; ++k) {  // per key: the copied batch's messages, then the owned's
      std::vector<std::string> expected;
      for (const char* prefix : {"c", "o"}) {
        for (int i = k; i < 60; i += 5) expected.push_back(prefix + std::to_string(i));
      }
      CHECK(by_key["rx-" + std::to_string(k)] == expected);
    }
  }

  TEST_CASE_TEMPLATE("a group's members share the messages, another group gets them all", A,
                     RXFLOW_BROKERS) {
    A a;
    std::string topic = a.Name("shared");
    auto c1 = a.broker().NewConsumer(a.Name("g1"), {topic});
    auto c2 = a.broker().NewConsumer(a.Name("g1"), {topic});
    auto other = a.broker().NewConsumer(a.Name("g2"), {topic});
    RXFLOW_REQUIRE_OK(c1);
    RXFLOW_REQUIRE_OK(c2);
    RXFLOW_REQUIRE_OK(other);
    auto producer = a.broker().NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    // Settle the group first: Kafka assigns partitions some seconds after members join,
    // and a rebalance hands uncommitted messages (and refuses commits) across members.
    // Probes on many keys are consumed until both members hold partitions; only then is
    // the group stable enough for "each message goes to one member".
    std::vector<Message> probes;
    for (int i = 0; i < 64; ++i) probes.push_back(Msg(topic, "probe" + std::to_string(i), "p"));
    RXFLOW_REQUIRE_OK((*producer)->Publish(probes));
    std::set<std::string> probed;
    bool first = false, second = false;
    auto settle_end = std::chrono::steady_clock::now() + 60s;
    while (!(first && second && probed.size() == probes.size()) &&
           std::chrono::steady_clock::now() < settle_end) {
      for (auto* c : {&*c1, &*c2}) {
        auto got = (*c)->Poll(64, 50ms);
        RXFLOW_REQUIRE_OK(got);
        for (const Message& m : *got) {
          (void)(*c)->Commit(m);  // may be refused during a rebalance: redelivered then
          probed.insert(m.key);
          (c == &*c1 ? first : second) = true;
        }
      }
    }
    REQUIRE(first);
    REQUIRE(second);
    std::vector<Message> batch;
    for (int i = 0; i < 300; ++i) batch.push_back(Msg(topic, "k" + std::to_string(i), "p"));
    RXFLOW_REQUIRE_OK((*producer)->Publish(batch));

    std::set<std::string> seen;
    std::atomic<size_t> total{0};
    std::mutex mu;
    // Worker threads record failures; the test's thread asserts them (a REQUIRE here would
    // end the whole binary).
    rxflow::testing::Failures failures;
    auto run = [&](Consumer& c) {
      auto end = std::chrono::steady_clock::now() + 30s;
      while (total.load() < batch.size() && std::chrono::steady_clock::now() < end) {
        auto got = c.Poll(64, 100ms);
        if (!got.ok()) return failures.Add("Poll: " + got.status().ToString());
        std::lock_guard lock(mu);
        for (const Message& m : *got) {
          if (m.key.rfind("probe", 0) == 0) continue;  // a late probe redelivery
          if (!seen.insert(m.key).second) failures.Add("delivered twice: " + m.key);
          if (rxflow::Status s = c.Commit(m); !s.ok()) failures.Add("Commit: " + s.ToString());
          ++total;
        }
      }
    };
    std::thread t1([&] { run(**c1); });
    std::thread t2([&] { run(**c2); });
    t1.join();
    t2.join();
    CHECK_MESSAGE(failures.empty(), failures.Text());
    CHECK(seen.size() == batch.size());
    auto all = Drain(**other, probes.size() + batch.size());
    CHECK(all.size() == probes.size() + batch.size());
  }

  TEST_CASE_TEMPLATE("uncommitted messages go to the next member after a consumer closes", A,
                     RXFLOW_BROKERS) {
    A a;
    std::string topic = a.Name("redeliver");
    std::string group = a.Name("g");
    auto producer = a.broker().NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    std::vector<Message> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(Msg(topic, "rx-1", std::to_string(i)));
    {
      auto first = a.broker().NewConsumer(group, {topic});
      RXFLOW_REQUIRE_OK(first);
      (void)(*first)->Poll(1, 10ms);
      RXFLOW_REQUIRE_OK((*producer)->Publish(batch));
      // Commit only the first 5, read everything.
      auto got = Drain(**first, batch.size(), 30s, /*commit=*/false);
      REQUIRE(got.size() == batch.size());
      RXFLOW_REQUIRE_OK((*first)->Commit(got[4]));
      (*first)->Close();
    }
    auto second = a.broker().NewConsumer(group, {topic});
    RXFLOW_REQUIRE_OK(second);
    auto again = Drain(**second, 15);
    REQUIRE(again.size() == 15);
    CHECK(again.front().payload == "5");
    CHECK(again.back().payload == "19");
  }

  TEST_CASE_TEMPLATE("committing a message that was never delivered is InvalidArgument", A,
                     RXFLOW_BROKERS) {
    A a;
    auto c = a.broker().NewConsumer(a.Name("g"), {a.Name("t")});
    RXFLOW_REQUIRE_OK(c);
    Message m;
    m.topic = a.Name("t");
    CHECK((*c)->Commit(m).code() == absl::StatusCode::kInvalidArgument);
  }
}

// (The in-process broker's own cases: in the core executable, or where no broker was chosen.)
#if !defined(RXFLOW_CONTRACT_BROKERS) || defined(RXFLOW_CONTRACT_IN_PROCESS)
TEST_SUITE("In-process broker") {
  TEST_CASE("a full partition makes Publish wait, then fail Unavailable") {
    rxflow::messaging::InProcessBrokerOptions o;
    o.partitions = 1;
    o.capacity = 4;
    o.publish_timeout = 50ms;
    auto broker = rxflow::messaging::NewInProcessBroker(o);
    auto c = broker->NewConsumer("g", {"t"});
    auto p = broker->NewProducer();
    std::vector<Message> four;
    for (int i = 0; i < 4; ++i) four.push_back(Msg("t", "k", std::to_string(i)));
    RXFLOW_REQUIRE_OK((*p)->Publish(four));
    Message fifth = Msg("t", "k", "4");
    CHECK((*p)->Publish({&fifth, 1}).code() == absl::StatusCode::kUnavailable);
    // Committing makes room.
    auto got = Drain(**c, 4);
    REQUIRE(got.size() == 4);
    CHECK((*p)->Publish({&fifth, 1}).ok());
  }

  TEST_CASE("a topic nobody consumes keeps the last `capacity` messages") {
    rxflow::messaging::InProcessBrokerOptions o;
    o.partitions = 1;
    o.capacity = 3;
    auto broker = rxflow::messaging::NewInProcessBroker(o);
    auto p = broker->NewProducer();
    for (int i = 0; i < 10; ++i) {
      Message m = Msg("audit", "k", std::to_string(i));
      RXFLOW_REQUIRE_OK((*p)->Publish({&m, 1}));
    }
    auto c = broker->NewConsumer("late", {"audit"});
    auto got = Drain(**c, 3);
    REQUIRE(got.size() == 3);
    CHECK(got.front().payload == "7");
  }

  TEST_CASE("a message given over that exceeds an unconsumed topic's retention is not kept") {
    rxflow::messaging::InProcessBrokerOptions o;
    o.partitions = 1;
    o.unconsumed_retention_bytes = 120;  // a short message (86 bytes), not a long one (185)
    auto broker = rxflow::messaging::NewInProcessBroker(o);
    auto p = broker->NewProducer();
    std::vector<Message> batch{Msg("audit", "k", std::string(100, 'x')), Msg("audit", "k", "1"),
                               Msg("audit", "k", std::string(100, 'y')), Msg("audit", "k", "2")};
    RXFLOW_REQUIRE_OK((*p)->PublishOwned(batch));  // each is trimmed as it is added
    auto c = broker->NewConsumer("late", {"audit"});
    auto got = (*c)->Poll(10, 100ms);
    RXFLOW_REQUIRE_OK(got);
    REQUIRE(got->size() == 1);
    CHECK(got->front().payload == "2");
  }
}
#endif
