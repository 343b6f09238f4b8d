// SPDX-License-Identifier: Apache-2.0
// RFC 3339 timestamps (rxflow/clock.h): ParseRfc3339 reads what FormatRfc3339 writes and the
// other forms of RFC 3339 section 5.6, and refuses what is not a time. Also the random
// identifiers (rxflow/internal/crypto.h): unique across threads and a fork; HMAC-SHA-256
// against RFC 4231's test vectors.
#include "rxflow/clock.h"

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/internal/crypto.h"

#include "testing/concurrency.h"
#include "testing/status.h"
#include <sys/wait.h>
#include <unistd.h>

namespace {

constexpr int64_t kSecond = 1'000'000;

}  // namespace

TEST_SUITE("Clock RFC 3339") {
  TEST_CASE("the forms of RFC 3339 date-time") {
    // 2026-11-30T12:00:00Z is 1796040000 s after the epoch (Python's calendar.timegm).
    const int64_t noon = 1'796'040'000 * kSecond;
    CHECK(*rxflow::ParseRfc3339("2026-11-30T12:00:00Z") == noon);
    CHECK(*rxflow::ParseRfc3339("2026-11-30t12:00:00z") == noon);
    CHECK(*rxflow::ParseRfc3339("2026-11-30T12:00:00.000000Z") == noon);
    CHECK(*rxflow::ParseRfc3339("2026-11-30T12:00:00.5Z") == noon + 500'000);
    CHECK(*rxflow::ParseRfc3339("2026-11-30T12:00:00.123456789Z") == noon + 123'456);
    CHECK(*rxflow::ParseRfc3339("2026-11-30T07:00:00-05:00") == noon);
    CHECK(*rxflow::ParseRfc3339("2026-11-30T13:30:00+01:30") == noon);
    CHECK(*rxflow::ParseRfc3339("2024-02-29T00:00:00Z") == 1'709'164'800 * kSecond);
    CHECK(*rxflow::ParseRfc3339("1970-01-01T00:00:00Z") == 0);
  }

  TEST_CASE("FormatRfc3339 and ParseRfc3339 round-trip") {
    for (int64_t t : {int64_t{0}, int64_t{1}, 1'764'151'200'000'000, 1'796'040'000'123'456,
                      int64_t{-1'000'001}}) {
      CAPTURE(t);
      auto back = rxflow::ParseRfc3339(rxflow::FormatRfc3339(t));
      RXFLOW_REQUIRE_OK(back);
      CHECK(*back == t);
    }
  }

  TEST_CASE("FormatRfc3339 writes the C library's UTC calendar, before 1970 and in leap years") {
    // The reference: gmtime_r and snprintf, as FormatRfc3339 was written before it formatted
    // the digits itself. Instants around the edges (leap days, centuries, the epoch, a
    // fraction before 1970) and a spread over years 0001-9999.
    auto reference = [](int64_t micros) {
      auto secs = static_cast<std::time_t>(micros / kSecond);
      int64_t frac = micros % kSecond;
      if (frac < 0) {
        frac += kSecond;
        --secs;
      }
      std::tm tm{};
      REQUIRE(gmtime_r(&secs, &tm) != nullptr);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    static_cast<long long>(frac));
      return std::string(buf);
    };
    std::vector<int64_t> instants = {0,
                                     1,
                                     -1,
                                     -1'000'001,
                                     -kSecond,
                                     951'782'400 * kSecond,                 // 2000-02-29
                                     951'868'799 * kSecond + 999'999,       // 2000-02-29 23:59:59
                                     4'107'542'400 * kSecond,               // 2100-03-01
                                     -2'203'891'200 * kSecond,              // 1900-03-01
                                     -62'135'596'800 * kSecond,             // 0001-01-01
                                     253'402'300'799 * kSecond + 999'999};  // 9999-12-31
    for (int64_t t = -62'135'596'800 * kSecond; t < 253'402'300'799 * kSecond;
         t += 7'777'777'777'777) {
      instants.push_back(t);
    }
    for (int64_t t : instants) {
      CAPTURE(t);
      CHECK(rxflow::FormatRfc3339(t) == reference(t));
    }
  }

  TEST_CASE("what is not an RFC 3339 date-time is refused, quoting it") {
    for (const char* bad :
         {"", "2026-11-30", "2026-11-30 12:00:00Z", "2026-11-30T12:00:00", "2026-02-30T12:00:00Z",
          "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-30T24:00:00Z",
          "2026-11-30T23:59:60Z", "2026-11-30T12:00Z", "2026-11-30T12:00:00.Z",
          "2026-11-30T12:00:00.1234567890Z", "2026-11-30T12:00:00+0100", "2026-11-30T12:00:00Zjunk",
          "+2026-11-30T12:00:00Z", "2026-11-30T12:00:00.5 Z"}) {
      CAPTURE(bad);
      auto t = rxflow::ParseRfc3339(bad);
      REQUIRE_FALSE(t.ok());
      CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(std::string(t.status().message()).find("is not an RFC 3339 timestamp") !=
            std::string::npos);
    }
  }
}

// Identifiers (rxflow/internal/crypto.h): IdHex128 draws from a per-thread buffer of
// OpenSSL's CSPRNG output; ids must stay unique across threads and across a fork.
TEST_SUITE("Identifiers") {
  // RFC 4231 section 4: test cases 1, 2, 6 (a key longer than SHA-256's block) and 7; each
  // call keys the thread's context again, so the order of the calls must not matter.
  TEST_CASE("HmacSha256Hex gives RFC 4231's HMAC-SHA-256 values, whatever key came before") {
    using rxflow::internal::HmacSha256Hex;
    const std::string key1(20, '\x0b');
    const std::string key6(131, '\xaa');
    for (int round = 0; round < 2; ++round) {
      CHECK(HmacSha256Hex(key1, "Hi There") ==
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
      CHECK(HmacSha256Hex("Jefe", "what do ya want for nothing?") ==
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
      CHECK(HmacSha256Hex(key6, "Test Using Larger Than Block-Size Key - Hash Key First") ==
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
      CHECK(HmacSha256Hex(key6,
                          "This is a test using a larger than block-size key and a larger than "
                          "block-size data. The key needs to be hashed before being used by the "
                          "HMAC algorithm.") ==
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
      // An empty key is the empty key, not the previous call's.
      CHECK(HmacSha256Hex("", "") ==
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    }
  }

  TEST_CASE("IdHex128 gives distinct 128-bit hex ids on several threads at once") {
    constexpr size_t kThreads = 4, kEach = 5000;
    std::vector<std::vector<std::string>> ids(kThreads);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (size_t t = 0; t < kThreads; ++t) {
      threads.emplace_back([&ids, t] {
        for (size_t i = 0; i < kEach; ++i) ids[t].push_back(rxflow::internal::IdHex128());
      });
    }
    for (auto& th : threads) th.join();
    std::set<std::string> all;
    for (const auto& list : ids) {
      for (const std::string& id : list) {
        REQUIRE(id.size() == 32);
        REQUIRE(id.find_first_not_of("0123456789abcdef") == std::string::npos);
        all.insert(id);
      }
    }
    CHECK(all.size() == kThreads * kEach);
  }

  TEST_CASE("a forked child does not hand out the ids its parent's buffer still holds") {
    // This thread's buffer is filled now and still holds up to 15 ids.
    (void)rxflow::internal::IdHex128();
    const rxflow::testing::PipedChild child = rxflow::testing::ForkPiped();
    REQUIRE(child.pid >= 0);
    if (child.pid == 0) {
      for (int i = 0; i < 15; ++i) {
        std::string id = rxflow::internal::IdHex128();
        if (::write(child.fd, id.data(), id.size()) != static_cast<ssize_t>(id.size())) _exit(2);
      }
      _exit(0);
    }
    std::set<std::string> parent;
    for (int i = 0; i < 15; ++i) parent.insert(rxflow::internal::IdHex128());
    const std::string from_child = rxflow::testing::ReadToEnd(child.fd);
    int status = 0;
    REQUIRE(::waitpid(child.pid, &status, 0) == child.pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(from_child.size() == 15 * 32);
    for (size_t i = 0; i < 15; ++i) {
      CHECK(parent.count(from_child.substr(i * 32, 32)) == 0);
    }
  }
}
