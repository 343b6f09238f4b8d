// SPDX-License-Identifier: Apache-2.0
// Broker adapters for the broker contract suite (tests/contract/broker_contract_test.cc).
// Each adapter type has broker() and Name(base): a topic/group name unique to this case.
#ifndef RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_
#define RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/messaging/broker.h"

#include <unistd.h>

namespace rxflow::testing {

// Unique across the test processes too (each case is its own process, and a real broker
// outlives them).
inline std::string UniqueName(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

// A message with a `message_id` header (key:payload) and a traceparent.
inline messaging::Message TestMessage(const std::string& topic, const std::string& key,
                                      const std::string& payload) {
  messaging::Message m;
  m.topic = topic;
  m.key = key;
  m.payload = payload;
  m.headers = {{"message_id", key + ":" + payload},
               {"traceparent", "00-" + std::string(32, 'a') + "-" + std::string(16, 'b') + "-01"}};
  return m;
}

// Polls `c` until `want` messages arrived or `deadline` passed; commits each one (unless
// `commit` is false).
inline std::vector<messaging::Message> Drain(
    messaging::Consumer& c, size_t want, std::chrono::seconds deadline = std::chrono::seconds(30),
    bool commit = true) {
  std::vector<messaging::Message> got;
  auto end = std::chrono::steady_clock::now() + deadline;
  while (got.size() < want && std::chrono::steady_clock::now() < end) {
    auto batch = c.Poll(want - got.size(), std::chrono::milliseconds(200));
    REQUIRE_MESSAGE(batch.ok(), batch.status().ToString());
    for (messaging::Message& m : *batch) {
      if (commit) REQUIRE(c.Commit(m).ok());
      got.push_back(std::move(m));
    }
  }
  return got;
}

// The same base names the same topic or group within one case (fresh across cases).
class CaseNames {
 public:
  std::string Name(const std::string& base) {
    auto [it, fresh] = names_.try_emplace(base);
    if (fresh) it->second = UniqueName(base);
    return it->second;
  }

 private:
  std::map<std::string, std::string> names_;
};

struct InProcessBrokerAdapter : CaseNames {
  std::unique_ptr<messaging::Broker> b = messaging::NewInProcessBroker();
  messaging::Broker& broker() { return *b; }
};

}  // namespace rxflow::testing

#ifdef RXFLOW_TEST_HAVE_KAFKA
#include "testing/kafka_adapters.h"  // KafkaBrokerAdapter: the mock cluster, or REDPANDA_BROKERS
#endif
// A test executable may name the brokers it runs the contract on (tests/CMakeLists.txt);
// without a choice, every broker built.
#if defined(RXFLOW_CONTRACT_BROKERS)
#define RXFLOW_BROKERS RXFLOW_CONTRACT_BROKERS
#elif defined(RXFLOW_TEST_HAVE_KAFKA)
#define RXFLOW_BROKERS rxflow::testing::InProcessBrokerAdapter, rxflow::testing::KafkaBrokerAdapter
#else
#define RXFLOW_BROKERS rxflow::testing::InProcessBrokerAdapter
#endif

#endif  // RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_
