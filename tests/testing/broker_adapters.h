// Broker adapters for the broker contract suite (tests/contract/broker_contract_test.cc).
// Each adapter type has broker() and Name(base): a topic/group name unique to this case.
#ifndef RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_
#define RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_

#include <atomic>
#include <memory>
#include <string>

#include "rxflow/messaging/broker.h"

namespace rxflow::testing {

inline std::string UniqueName(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(++n);
}

struct InProcessBrokerAdapter {
  std::unique_ptr<messaging::Broker> b = messaging::NewInProcessBroker();
  messaging::Broker& broker() { return *b; }
  std::string Name(const std::string& base) { return UniqueName(base); }
};

}  // namespace rxflow::testing

#ifdef RXFLOW_TEST_HAVE_KAFKA
#include "testing/kafka_adapters.h"  // KafkaBrokerAdapter: the mock cluster, or REDPANDA_BROKERS
#define RXFLOW_BROKERS rxflow::testing::InProcessBrokerAdapter, rxflow::testing::KafkaBrokerAdapter
#else
#define RXFLOW_BROKERS rxflow::testing::InProcessBrokerAdapter
#endif

#endif  // RXFLOW_TESTS_TESTING_BROKER_ADAPTERS_H_
