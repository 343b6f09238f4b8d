// SPDX-License-Identifier: Apache-2.0
// Failed-authentication throttling (rxflow/auth/throttle.h): the per-key and per-address
// limits, the sliding window, Retry-After, the bound on what is tracked, and concurrent use.
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/auth/throttle.h"

namespace {

using rxflow::auth::AuthThrottle;
using rxflow::auth::ThrottleOptions;

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kT0 = 1'764'151'200'000'000;  // 2025-11-26T10:00:00Z
constexpr char kKey[] = "0a1b2c3d4e5f";
constexpr char kAddress[] = "192.0.2.1";

}  // namespace

TEST_SUITE("Auth throttle") {
  TEST_CASE("five failures of a key id block it, with a Retry-After within the window") {
    AuthThrottle t;
    for (int i = 0; i < 4; ++i) {
      CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + i * kSecond) == 0);
      t.Failure(kKey, kAddress, kT0 + i * kSecond);
    }
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + 4 * kSecond) == 0);
    t.Failure(kKey, kAddress, kT0 + 4 * kSecond);
    const int64_t wait = t.RetryAfterSeconds(kKey, kAddress, kT0 + 4 * kSecond);
    CHECK(wait >= 1);
    CHECK(wait <= 60);
    CHECK(wait == 56);  // until the first failure (at kT0) leaves the 60 s window
    CHECK(t.blocked_total() == 1);
    // The key id is blocked from any address; the address is not blocked for other keys.
    CHECK(t.RetryAfterSeconds(kKey, "198.51.100.7", kT0 + 5 * kSecond) > 0);
    CHECK(t.RetryAfterSeconds("ffffffffffff", kAddress, kT0 + 5 * kSecond) == 0);
    CHECK(t.RetryAfterSeconds("", kAddress, kT0 + 5 * kSecond) == 0);
    CHECK(t.blocked_total() == 2);
  }

  TEST_CASE("the block ends when the failures leave the window") {
    AuthThrottle t;
    for (int i = 0; i < 5; ++i) t.Failure(kKey, kAddress, kT0);
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0) == 60);
    // Rounded up: one microsecond left is still a second to wait.
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + 60 * kSecond - 1) == 1);
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + 60 * kSecond) == 0);
    CHECK(t.blocked_total() == 2);
    // Forgotten entirely: four new failures do not block again.
    for (int i = 0; i < 4; ++i) t.Failure(kKey, kAddress, kT0 + 61 * kSecond);
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + 61 * kSecond) == 0);
  }

  TEST_CASE("the window slides: old failures stop counting one by one") {
    AuthThrottle t;
    for (int i = 0; i < 5; ++i) t.Failure(kKey, kAddress, kT0 + i * 10 * kSecond);  // 0..40 s
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + 40 * kSecond) == 20);
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + 60 * kSecond) == 0);  // 4 left
    t.Failure(kKey, kAddress, kT0 + 61 * kSecond);                        // 5 again
    CHECK(t.RetryAfterSeconds(kKey, kAddress, kT0 + 61 * kSecond) == 9);  // 10 s + 60 - 61
  }

  TEST_CASE("the address limit holds whatever key ids it presents") {
    AuthThrottle t;
    for (int i = 0; i < 20; ++i) {
      CHECK(t.RetryAfterSeconds("", kAddress, kT0) == 0);
      t.Failure(i % 2 == 0 ? "" : "k" + std::to_string(i), kAddress, kT0);
    }
    CHECK(t.RetryAfterSeconds("", kAddress, kT0) == 60);
    CHECK(t.RetryAfterSeconds("0123456789ab", kAddress, kT0) == 60);  // a fresh key id
    CHECK(t.RetryAfterSeconds("", "198.51.100.7", kT0) == 0);         // another address
    CHECK(t.RetryAfterSeconds("k1", "198.51.100.7", kT0) == 0);       // k1 failed once
  }

  TEST_CASE("no key presented: counted under the address only") {
    AuthThrottle t;
    for (int i = 0; i < 10; ++i) t.Failure("", kAddress, kT0);
    CHECK(t.tracked() == 1);
    CHECK(t.RetryAfterSeconds("", kAddress, kT0) == 0);
  }

  TEST_CASE("options: smaller limits and windows") {
    AuthThrottle t(ThrottleOptions{.max_failures_per_key = 2,
                                   .max_failures_per_address = 3,
                                   .window_micros = 10 * kSecond,
                                   .max_tracked = 100});
    t.Failure(kKey, kAddress, kT0);
    t.Failure(kKey, "198.51.100.7", kT0 + kSecond);
    CHECK(t.RetryAfterSeconds(kKey, "203.0.113.9", kT0 + kSecond) == 9);
    CHECK(t.RetryAfterSeconds(kKey, "203.0.113.9", kT0 + 10 * kSecond - 1) == 1);
    // The first failure has left the window: one is not two.
    CHECK(t.RetryAfterSeconds(kKey, "203.0.113.9", kT0 + 10 * kSecond) == 0);
  }

  TEST_CASE("memory is bounded by max_tracked, and the throttle still works when full") {
    AuthThrottle t(ThrottleOptions{.max_failures_per_key = 5,
                                   .max_failures_per_address = 3,
                                   .window_micros = 60 * kSecond,
                                   .max_tracked = 10});
    for (int i = 0; i < 100; ++i) {
      t.Failure("key" + std::to_string(i), "10.0.0." + std::to_string(i), kT0 + i);
    }
    CHECK(t.tracked() <= 20);
    // The most recent ones are kept.
    for (int i = 0; i < 2; ++i) t.Failure("", "10.0.0.99", kT0 + 100);
    CHECK(t.RetryAfterSeconds("", "10.0.0.99", kT0 + 100) == 60);
    // A new address is tracked, and blocked, although the map was full.
    for (int i = 0; i < 3; ++i) t.Failure("", "10.1.0.1", kT0 + 200);
    CHECK(t.RetryAfterSeconds("", "10.1.0.1", kT0 + 200) == 60);
    CHECK(t.blocked_total() == 2);
    CHECK(t.tracked() <= 20);
  }

  TEST_CASE("when full, entries whose failures have expired go before a blocked one") {
    AuthThrottle t(ThrottleOptions{.max_failures_per_key = 5,
                                   .max_failures_per_address = 3,
                                   .window_micros = 10 * kSecond,
                                   .max_tracked = 2});
    t.Failure("", "a", kT0);                                            // expires at kT0 + 10 s
    for (int i = 0; i < 3; ++i) t.Failure("", "b", kT0 + 5 * kSecond);  // blocked
    t.Failure("", "c", kT0 + 11 * kSecond);                             // full: "a" goes
    CHECK(t.tracked() == 2);
    CHECK(t.RetryAfterSeconds("", "b", kT0 + 11 * kSecond) == 4);
    // Full again and nothing expired: the oldest last failure ("b") goes.
    t.Failure("", "d", kT0 + 12 * kSecond);
    CHECK(t.tracked() == 2);
    CHECK(t.RetryAfterSeconds("", "b", kT0 + 12 * kSecond) == 0);
  }

  TEST_CASE("concurrent callers") {
    AuthThrottle t(ThrottleOptions{.max_failures_per_key = 5,
                                   .max_failures_per_address = 20,
                                   .window_micros = 60 * kSecond,
                                   .max_tracked = 64});
    std::vector<std::thread> threads;
    for (int n = 0; n < 4; ++n) {
      threads.emplace_back([&t, n] {
        for (int i = 0; i < 2000; ++i) {
          const std::string address = "10." + std::to_string(n) + ".0." + std::to_string(i % 100);
          if (t.RetryAfterSeconds("k" + std::to_string(i % 7), address, kT0 + i) == 0) {
            t.Failure("k" + std::to_string(i % 7), address, kT0 + i);
          }
        }
      });
    }
    for (std::thread& th : threads) th.join();
    CHECK(t.tracked() <= 128);
    CHECK(t.blocked_total() > 0);  // the seven key ids are blocked after five failures each
  }
}
