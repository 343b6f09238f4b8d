// SPDX-License-Identifier: Apache-2.0
// internal::UnsharedCopy: the same error, sharing nothing with the original (the group
// commits hand one failure to callers on several threads with it).
#include <string>

#include <absl/strings/cord.h>
#include <doctest/doctest.h>

#include "rxflow/internal/status_macros.h"

namespace {

using rxflow::internal::UnsharedCopy;

TEST_SUITE("status") {
  TEST_CASE("UnsharedCopy keeps the code, the message and every payload") {
    absl::Status s = absl::FailedPreconditionError("key destroyed");
    s.SetPayload("type.rxflow.dev/phi-erased", absl::Cord("1"));
    s.SetPayload("type.example/other", absl::Cord("two"));
    absl::Status copy = UnsharedCopy(s);
    CHECK(copy == s);
    CHECK(copy.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(copy.message() == "key destroyed");
    CHECK(copy.GetPayload("type.rxflow.dev/phi-erased") == absl::Cord("1"));
    CHECK(copy.GetPayload("type.example/other") == absl::Cord("two"));
  }

  TEST_CASE("UnsharedCopy shares no storage with the original, where a plain copy does") {
    absl::Status s = absl::UnavailableError("database is locked");
    absl::Status plain = s;
    // A plain copy shares the reference-counted payload (the same message bytes)...
    REQUIRE(plain.message().data() == s.message().data());
    // ...an unshared copy has its own, so dropping it on another thread frees nothing the
    // original's holders read.
    absl::Status own = UnsharedCopy(s);
    CHECK(own.message().data() != s.message().data());
    CHECK(own == s);
  }

  TEST_CASE("UnsharedCopy of OK is OK") { CHECK(UnsharedCopy(absl::OkStatus()).ok()); }
}

}  // namespace
