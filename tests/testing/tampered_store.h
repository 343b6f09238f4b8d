// SPDX-License-Identifier: Apache-2.0
// Test helper: a store whose ReadStream returns the events as `edit` changed them, to tamper
// with records that the memory store will not let anyone change (the audit chain's tests).
#ifndef RXFLOW_TESTS_TESTING_TAMPERED_STORE_H_
#define RXFLOW_TESTS_TESTING_TAMPERED_STORE_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "rxflow/store/event_store.h"

namespace rxflow::testing {

class Tampered : public store::StoreWrapper {
 public:
  using Edit = std::function<void(std::vector<store::EventRecord>&)>;
  Tampered(store::Store& target, Edit edit) : StoreWrapper(target), edit_(std::move(edit)) {}
  StatusOr<std::vector<store::EventRecord>> ReadStream(const std::string& s,
                                                       int64_t after) override {
    auto events = target_.ReadStream(s, after);
    if (events.ok()) edit_(*events);
    return events;
  }

 private:
  Edit edit_;
};

}  // namespace rxflow::testing

#endif  // RXFLOW_TESTS_TESTING_TAMPERED_STORE_H_
