// SPDX-License-Identifier: Apache-2.0
// Test helpers: assertions on absl::Status and StatusOr that print the status when they fail.
//   RXFLOW_REQUIRE_OK(store->Append(req));   // stops the case
//   RXFLOW_CHECK_OK(service->Route(id));     // records the failure and goes on
#ifndef RXFLOW_TESTS_TESTING_STATUS_H_
#define RXFLOW_TESTS_TESTING_STATUS_H_

#include <doctest/doctest.h>

#include "rxflow/status.h"

namespace rxflow::testing {

inline Status StatusOf(const Status& s) { return s; }
template <class T>
Status StatusOf(const StatusOr<T>& v) {
  return v.status();
}

}  // namespace rxflow::testing

#define RXFLOW_STATUS_ASSERT_(MACRO, expr)                                     \
  do {                                                                         \
    const ::rxflow::Status rxflow_status_ = ::rxflow::testing::StatusOf(expr); \
    MACRO(rxflow_status_.ok(), #expr, " is ", rxflow_status_.ToString());      \
  } while (false)
#define RXFLOW_REQUIRE_OK(expr) RXFLOW_STATUS_ASSERT_(REQUIRE_MESSAGE, expr)
#define RXFLOW_CHECK_OK(expr) RXFLOW_STATUS_ASSERT_(CHECK_MESSAGE, expr)

#endif  // RXFLOW_TESTS_TESTING_STATUS_H_
