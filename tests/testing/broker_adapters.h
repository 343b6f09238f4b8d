// Broker adapters for the broker contract suite (tests/contract/broker_contract_test.cc).
// Each adapter type has broker() and Name(base): a topic/group name unique to this case.
#ifndef RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_
#define RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "rxflow/messaging/broker.h"

namespace rxflow::testing {

inline std::string UniqueName(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(++n);
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
#define RXFLOW_BROKERS rxflow::testing::InProcessBrokerAdapter, rxflow::testing::KafkaBrokerAdapter
#else
#define RXFLOW_BROKERS rxflow::testing::InProcessBrokerAdapter
#endif

#endif  // RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_
